"""URL paths of the HiDream img2svg interface (and the local service's file route)."""

API_PREFIX = "/api-pub/gw/v2/image/img2svg"
SUBMIT_PATH = f"{API_PREFIX}/async"
RESULTS_PATH = f"{API_PREFIX}/async/results"
BATCH_RESULTS_PATH = f"{API_PREFIX}/async/results/batch"
SYNC_PATH = f"{API_PREFIX}/sync"
FILES_PREFIX = "/files"
