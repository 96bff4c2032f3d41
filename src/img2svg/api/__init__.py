"""The HiDream img2svg wire protocol: paths, JSON models and error codes.

Shared by the client and the local service so that both speak exactly the same shapes.
"""

from img2svg.api.codes import ErrorCode
from img2svg.api.paths import (
    BATCH_RESULTS_PATH,
    FILES_PREFIX,
    RESULTS_PATH,
    SUBMIT_PATH,
    SYNC_PATH,
)

__all__ = [
    "BATCH_RESULTS_PATH",
    "FILES_PREFIX",
    "RESULTS_PATH",
    "SUBMIT_PATH",
    "SYNC_PATH",
    "ErrorCode",
]
