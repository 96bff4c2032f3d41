"""Write the results table and failure report, and show the run in the Prefect UI."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from img2svg.finish import results
from img2svg.finish.catalog import catalog_status
from img2svg.finish.fanout import fan_out_chunk
from img2svg.finish.report_page import write_report
from img2svg.finish.summary import RunSummary, counts_table, markdown
from img2svg.fsutil import no_space_as
from img2svg.stores.ledger import Ledger
from img2svg.stores.opened import workspace_and_ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace


@task(name="write-results", cache_policy=NO_CACHE)
def write_results(
    workspace: str, chunks: int, out: str, mode: str, ledger_location: str, title: str
) -> RunSummary:
    """Give every row its SVG, then stream the tables and the report out of the workspace."""
    outputs = OutputStore(out)
    with (
        workspace_and_ledger(workspace, ledger_location) as (work, ledger),
        no_space_as(outputs.out),  # the tables cannot be written: one clear error
    ):
        _finish_rows(work, ledger, outputs, chunks)
        summary = _with_report(work, outputs, mode, title)
        return replace(summary, catalog=_catalog(work, ledger, outputs, summary))


def _catalog(work: Workspace, ledger: Ledger, outputs: OutputStore, summary: RunSummary) -> str:
    """Record this run's figures in the ledger, then say where the catalog stands (the figures
    `img2svg status` prints)."""
    paid = work.tasks_paid()
    figures = {"tasks_paid": paid["tasks"], "span_s": paid["span_s"],
               "mean_task_s": paid["mean_task_s"], "rows": summary.total,
               "by_status": summary.counts}  # fmt: skip
    ledger.record_run(str(flow_run.id or uuid.uuid4()), outputs.out, work.created_at,
                      json.dumps(figures))  # fmt: skip
    return catalog_status(summary.total, outputs, ledger).markdown()


def _with_report(work: Workspace, outputs: OutputStore, mode: str, title: str) -> RunSummary:
    summary = results.write_results(work, outputs, mode)
    return replace(summary, report_html=write_report(work, outputs, mode, title))


def _finish_rows(work: Workspace, ledger: Ledger, outputs: OutputStore, chunks: int) -> None:
    work.close_open_jobs("the run ended without an outcome for this row", time.time())
    for chunk in range(chunks):
        fan_out_chunk(work, ledger, outputs, chunk)


@task(name="export-part", cache_policy=NO_CACHE)
def export_part(workspace: str, chunks: int, out: str, ledger_location: str, part: str) -> int:
    """A shard's ending: every row gets its SVG, then the shard's results go to `part` in the
    shared output, for the run that split the catalog to merge."""
    outputs = OutputStore(out)
    with workspace_and_ledger(workspace, ledger_location) as (work, ledger):
        _finish_rows(work, ledger, outputs, chunks)
        return results.export_part(work, outputs, part)


@task(name="merge-results", cache_policy=NO_CACHE)
def merge_results(
    workspace: str,
    shards: int,
    parts: list[str],
    missing: dict[int, str],
    out: str,
    mode: str,
    title: str,
) -> RunSummary:
    """The shards' parts into one results table, failure report and summary: the workspace
    holds every manifest row, so a row no shard reported is an error saying why."""
    outputs = OutputStore(out)
    with Workspace(workspace) as work:
        work.expect_shards(shards)
        for shard, part in enumerate(parts):
            rows = results.read_part(outputs, part)
            if rows is None:
                work.shard_missing(shard, missing.get(shard) or f"shard {shard + 1} wrote no part")
            else:
                work.add_part(rows)
        return _with_report(work, outputs, mode, title)


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
