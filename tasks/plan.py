"""Fingerprint a chunk's images and decide what each row needs, before anything is spent."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from img2svg.plan.chunk import identify_and_plan
from img2svg.plan.decide import PlanOptions
from img2svg.plan.identify import FingerprintMode
from img2svg.run.settings import RunSettings
from img2svg.stores.opened import workspace_and_ledger
from img2svg.stores.outputs import OutputStore


@task(name="plan-chunk", retries=1, cache_policy=NO_CACHE)
async def plan_chunk(
    workspace: str,
    chunk: int,
    *,
    settings: RunSettings,
    options: PlanOptions,
    fingerprint: FingerprintMode,
    out: str,
    ledger_location: str,
) -> dict[str, int]:
    """Returns the chunk's plan counts (what it will cost), which add up to the run's."""
    with workspace_and_ledger(workspace, ledger_location) as (work, ledger):
        await identify_and_plan(
            work,
            chunk,
            ledger=ledger,
            outputs=OutputStore(out),
            settings=settings,
            options=options,
            fingerprint=fingerprint,
        )
        return work.plan_counts(chunk)
