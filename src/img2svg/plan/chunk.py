"""Plan one chunk: fingerprint its images, then decide with the ledger what each row needs."""

from __future__ import annotations

from img2svg.plan.decide import PlanOptions, decide_rows
from img2svg.plan.identify import FingerprintMode, identify_rows
from img2svg.run.settings import RunSettings
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace


async def identify_and_plan(
    workspace: Workspace,
    chunk: int,
    *,
    ledger: Ledger,
    outputs: OutputStore,
    settings: RunSettings,
    options: PlanOptions,
    fingerprint: FingerprintMode,
) -> None:
    rows = workspace.chunk_rows(chunk)
    base = workspace.meta("base") or "."
    identified = await identify_rows(rows, base, settings, ledger=ledger, mode=fingerprint)
    decide_rows(
        chunk,
        rows,
        identified,
        workspace=workspace,
        ledger=ledger,
        outputs=outputs,
        options=options,
    )
