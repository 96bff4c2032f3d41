"""Submit a chunk's new jobs, and poll its tasks (downloading each SVG as soon as it is done).

The two tasks of a chunk run side by side and share the run's task window: a submission takes
a slot, the poller gives it back when it sees the task finish. They read and write the chunk's
jobs in the run's workspace (given by path), never through shared Python objects. Per-request
retries happen in the client; the task retries below cover a chunk that failed as a whole (an
unexpected error). A retried submit cannot bill twice: the ledger claims each idempotency key
right before its POST leaves, and a retry finds the key claimed (it polls the task, or reports
the row unconfirmed) instead of sending it again. Polling is read-only.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from img2svg.convert.chunks import poll_chunk as poll_chunk_work
from img2svg.convert.chunks import submit_chunk as submit_chunk_work
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import with_password
from img2svg.stores.workspace import Workspace
from tasks.limits import throttle_for


@task(
    name="submit-chunk",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_policy=NO_CACHE,
)
async def submit_chunk(
    workspace: str,
    chunk: int,
    endpoint: Endpoint,
    settings: RunSettings,
    run_key: str,
    ledger_location: str,
) -> int:
    throttle = throttle_for(run_key, settings)
    with Workspace(workspace) as work, Ledger(with_password(ledger_location)) as ledger:
        return await submit_chunk_work(
            work, chunk, endpoint=endpoint, settings=settings, throttle=throttle, ledger=ledger
        )


@task(
    name="poll-chunk",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_policy=NO_CACHE,
)
async def poll_chunk(
    workspace: str,
    chunk: int,
    endpoint: Endpoint,
    settings: RunSettings,
    out: str,
    run_key: str,
    ledger_location: str,
) -> None:
    throttle = throttle_for(run_key, settings)
    with Workspace(workspace) as work, Ledger(with_password(ledger_location)) as ledger:
        await poll_chunk_work(
            work,
            chunk,
            endpoint=endpoint,
            settings=settings,
            throttle=throttle,
            outputs=OutputStore(out),
            ledger=ledger,
        )
