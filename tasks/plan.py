"""Fingerprint the manifest's images and decide what each row needs, before anything is spent."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from img2svg.pipeline.ledger import Ledger
from img2svg.pipeline.manifest import ManifestRow
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Identified, Plan, identify_rows, plan_run
from img2svg.pipeline.settings import RunSettings


@task(name="identify-images", retries=1, cache_policy=NO_CACHE)
async def identify_batch(
    rows: list[ManifestRow], base: str, settings: RunSettings
) -> list[Identified]:
    return await identify_rows(rows, base, settings)


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_conversions(
    rows: list[ManifestRow],
    identified: list[Identified],
    *,
    settings: RunSettings,
    out: str,
    ledger_file: str,
    backend: str,
    force: bool,
    limit: int | None,
    dry_run: bool = False,
    resend_interrupted: bool = True,
    resubmit_unconfirmed: bool = False,
) -> Plan:
    with Ledger(Path(ledger_file)) as ledger:
        return plan_run(
            rows,
            identified,
            mode=settings.mode,
            ledger=ledger,
            outputs=OutputStore(out),
            backend=backend,
            force=force,
            limit=limit,
            dry_run=dry_run,
            resend_interrupted=resend_interrupted,
            resubmit_unconfirmed=resubmit_unconfirmed,
        )
