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
from prefect.states import State
from prefect.tasks import exponential_backoff

from img2svg.convert.chunks import poll_open_jobs, submit_new_jobs
from img2svg.fsutil import NoSpaceLeft
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stores.ledger import LedgerUnavailable
from img2svg.stores.opened import workspace_and_ledger
from img2svg.stores.outputs import OutputStore
from tasks.limits import throttle_for


def worth_retrying(task: object, task_run: object, state: State) -> bool:
    """A full disk, or a ledger gone past its bound, fails every retry alike: the run stops.
    (Told by the failure's message, which names the exception: reading the result of an async
    task's state here would need an event loop.)"""
    return not any(f"{stop.__name__}" in (state.message or "") for stop in STOPS)


STOPS = (NoSpaceLeft, LedgerUnavailable)


@task(
    name="submit-chunk",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_condition_fn=worth_retrying,
    cache_policy=NO_CACHE,
)
async def submit_chunk(
    workspace: str,
    chunk: int,
    endpoint: Endpoint,
    settings: RunSettings,
    run_id: str,
    ledger_location: str,
) -> int:
    """Returns how many of the chunk's jobs it sent."""
    throttle = throttle_for(run_id, settings)
    with workspace_and_ledger(workspace, ledger_location) as (work, ledger):
        return await submit_new_jobs(
            work, chunk, endpoint=endpoint, settings=settings, throttle=throttle, ledger=ledger
        )


@task(
    name="poll-chunk",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_condition_fn=worth_retrying,
    cache_policy=NO_CACHE,
)
async def poll_chunk(
    workspace: str,
    chunk: int,
    endpoint: Endpoint,
    settings: RunSettings,
    out: str,
    run_id: str,
    ledger_location: str,
) -> dict[str, int]:
    """Returns the chunk's jobs by status once all are final."""
    throttle = throttle_for(run_id, settings)
    with workspace_and_ledger(workspace, ledger_location) as (work, ledger):
        await poll_open_jobs(
            work,
            chunk,
            endpoint=endpoint,
            settings=settings,
            throttle=throttle,
            outputs=OutputStore(out),
            ledger=ledger,
        )
        return work.job_counts(chunk)
