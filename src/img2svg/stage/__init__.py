"""Stage 1: read the manifest, streamed, into the run's workspace; image references."""
