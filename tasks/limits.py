"""The run-wide throttle, shared by the mapped tasks of one flow run (they run in threads), and
the Prefect global concurrency limit that caps submissions across every run of every deployment.
"""

from __future__ import annotations

import threading

from prefect.client.orchestration import get_client
from prefect.concurrency.asyncio import rate_limit
from prefect.exceptions import ObjectNotFound

from img2svg.client import Throttle
from img2svg.run.settings import RunSettings

_lock = threading.Lock()
_throttles: dict[str, Throttle] = {}
_abandoned: set[str] = set()  # runs that stopped early: a run id each, for the process's life


def shared_limit_exists(name: str) -> bool:
    """Looked up once per run: `rate_limit` on a missing limit warns at every call."""
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return False
    return bool(limit.active)


def throttle_for(run_id: str, settings: RunSettings) -> Throttle:
    """The run's one throttle (rate, requests and tasks in flight), made on first use."""
    with _lock:
        if run_id in _abandoned:
            stopped = Throttle()
            stopped.abandon("the run stopped")
            return stopped
        if run_id not in _throttles:
            gate = None
            shared_limit = settings.shared_limit
            if shared_limit:

                async def gate() -> None:
                    await rate_limit(shared_limit, occupy=1, strict=True)

            _throttles[run_id] = Throttle(
                per_minute=settings.rate_limit_per_minute,
                concurrency=settings.concurrency,
                gate=gate,
                max_in_flight=settings.max_in_flight,
            )
        return _throttles[run_id]


def forget(run_id: str) -> None:
    """The run's steps are over: its throttle goes. A task of it still retrying (or started
    late) then gets an abandoned throttle, so it ends instead of working for a run that did."""
    with _lock:
        ended = _throttles.pop(run_id, None)
        if ended is not None and ended.abandoned:
            _abandoned.add(run_id)
