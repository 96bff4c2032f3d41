"""Submit a batch of jobs, then poll it (downloading each SVG as soon as it is done).

Each task run handles a whole batch with concurrent HTTP calls inside it: task runs cost
milliseconds each and the Prefect UI struggles with tens of thousands of them. Per-request
retries happen in the client; the task-level retries below cover a batch that failed as a whole
(a crash of the worker thread, an unexpected error). A retried submit cannot bill twice: the
ledger claims each idempotency key right before its POST leaves, and a retry finds the key
claimed (it polls the task, or reports the row unconfirmed) instead of sending it again.
Polling is read-only.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from img2svg.pipeline.batch import poll_jobs, submit_jobs
from img2svg.pipeline.ledger import Ledger
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Job
from img2svg.pipeline.settings import Endpoint, RunSettings
from tasks.limits import throttle_for


@task(
    name="submit-batch",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_policy=NO_CACHE,
)
async def submit_batch(
    jobs: list[Job], endpoint: Endpoint, settings: RunSettings, run_key: str, ledger_file: str
) -> list[Job]:
    throttle = throttle_for(
        run_key, settings.rate_limit_per_minute, settings.concurrency, settings.shared_limit
    )
    with Ledger(Path(ledger_file)) as ledger:
        return await submit_jobs(
            jobs, endpoint=endpoint, settings=settings, throttle=throttle, ledger=ledger
        )


@task(
    name="poll-batch",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_policy=NO_CACHE,
)
async def poll_batch(
    jobs: list[Job],
    endpoint: Endpoint,
    settings: RunSettings,
    out: str,
    run_key: str,
    ledger_file: str,
) -> list[Job]:
    throttle = throttle_for(
        run_key, settings.rate_limit_per_minute, settings.concurrency, settings.shared_limit
    )
    with Ledger(Path(ledger_file)) as ledger:
        return await poll_jobs(
            jobs,
            endpoint=endpoint,
            settings=settings,
            throttle=throttle,
            outputs=OutputStore(out),
            ledger=ledger,
        )
