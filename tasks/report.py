"""Write the results table and failure report, and show the run in the Prefect UI."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from img2svg.pipeline import results
from img2svg.pipeline.fanout import fan_out_chunk
from img2svg.pipeline.ledger import Ledger
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.report import RunSummary, counts_table, markdown
from img2svg.pipeline.workspace import Workspace


@task(name="write-results", cache_policy=NO_CACHE)
def write_results(workspace: str, chunks: int, out: str, mode: str, ledger_file: str) -> RunSummary:
    """Give every row its SVG, then stream the tables out of the workspace."""
    outputs = OutputStore(out)
    with Workspace(workspace) as work, Ledger(Path(ledger_file)) as ledger:
        work.close_open_jobs("the run ended without an outcome for this row", time.time())
        for chunk in range(chunks):
            fan_out_chunk(work, ledger, outputs, chunk)
        return results.write_results(work, outputs, mode)


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(summary: RunSummary, key_prefix: str) -> None:
    """The results are already written; a Prefect API failure here only costs the UI view.
    The artifacts are `<key_prefix>-counts` and `<key_prefix>-report`."""
    try:
        _publish(summary, key_prefix)
    except Exception as exc:
        get_run_logger().warning(
            "could not publish the report artifacts (%s: %s); the results are in %s",
            type(exc).__name__,
            exc,
            summary.out,
        )


def _publish(summary: RunSummary, key_prefix: str) -> None:
    create_table_artifact(
        key=f"{key_prefix}-counts",
        table=counts_table(summary),
        description=f"Rows by status ({summary.total} rows)",
    )
    create_markdown_artifact(
        key=f"{key_prefix}-report",
        markdown=markdown(summary),
        description="Failure summary and where the outputs are",
    )
