"""Submit a batch, then poll it (downloading each SVG as soon as it is done).

Each task run handles a whole batch of rows with concurrent HTTP calls inside it: task runs cost
milliseconds each and the Prefect UI struggles with tens of thousands of them. Per-request
retries happen in the client; the task-level retries below cover a batch that failed as a whole
(a crash of the worker thread, an unexpected error), and are safe because submissions carry
idempotency keys and polling is read-only.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from img2svg.pipeline.batch import poll_rows, submit_rows
from img2svg.pipeline.manifest import ManifestRow
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.rows import RowState
from img2svg.pipeline.settings import Endpoint, RunSettings
from tasks.limits import throttle_for


@task(
    name="submit-batch",
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_policy=NO_CACHE,
)
async def submit_batch(
    rows: list[ManifestRow], base: str, endpoint: Endpoint, settings: RunSettings, run_key: str
) -> list[RowState]:
    throttle = throttle_for(run_key, settings.rate_limit_per_minute, settings.concurrency)
    return await submit_rows(
        rows, base=base, endpoint=endpoint, settings=settings, throttle=throttle
    )


@task(
    name="poll-batch",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    cache_policy=NO_CACHE,
)
async def poll_batch(
    states: list[RowState], endpoint: Endpoint, settings: RunSettings, out: str, run_key: str
) -> list[RowState]:
    throttle = throttle_for(run_key, settings.rate_limit_per_minute, settings.concurrency)
    return await poll_rows(
        states, endpoint=endpoint, settings=settings, throttle=throttle, outputs=OutputStore(out)
    )
