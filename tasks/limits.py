"""The run-wide throttle, shared by the mapped tasks of one flow run (they run in threads), and
the Prefect global concurrency limit that caps submissions across every run of every deployment.
"""

from __future__ import annotations

import threading

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectNotFound

from img2svg.client import Throttle

SHARED_LIMIT = "img2svg-submissions"

_lock = threading.Lock()
_throttles: dict[str, Throttle] = {}


def shared_limit_exists(name: str) -> bool:
    """Looked up once per run: `rate_limit` on a missing limit warns at every call."""
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return bool(limit.active)


def throttle_for(
    run_key: str, per_minute: float | None, concurrency: int, shared_limit: str | None = None
) -> Throttle:
    with _lock:
        if run_key not in _throttles:
            gate = None
            if shared_limit:

                async def gate() -> None:
                    await rate_limit(shared_limit, occupy=1, strict=True)

            _throttles[run_key] = Throttle(
                per_minute=per_minute, concurrency=concurrency, gate=gate
            )
        return _throttles[run_key]


def forget(run_key: str) -> None:
    with _lock:
        _throttles.pop(run_key, None)
