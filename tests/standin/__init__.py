"""A stand-in for HiDream's img2svg async API, written from its documentation alone."""
