"""Plan one chunk: fingerprint its images, then decide with the ledger what each row needs.

The chunk's rows are decided in the run's order (`--order-by`, else the manifest's), which is
the order `--limit` takes them in."""

from __future__ import annotations

from img2svg.plan.decide import PlanOptions, decide_rows
from img2svg.plan.identify import FingerprintMode, identify_rows
from img2svg.run.settings import RunSettings
from img2svg.stage.order import in_staged_order
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
    rows = in_staged_order(workspace, chunk, workspace.chunk_rows(chunk))
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
