"""The run-wide throttle, shared by the mapped tasks of one flow run (they run in threads)."""

from __future__ import annotations

import threading

from img2svg.client import Throttle

_lock = threading.Lock()
_throttles: dict[str, Throttle] = {}


def throttle_for(run_key: str, per_minute: float | None, concurrency: int) -> Throttle:
    with _lock:
        if run_key not in _throttles:
            _throttles[run_key] = Throttle(per_minute=per_minute, concurrency=concurrency)
        return _throttles[run_key]


def forget(run_key: str) -> None:
    with _lock:
        _throttles.pop(run_key, None)
