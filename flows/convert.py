"""The conversion flow: manifest in, SVGs + results table + failure report out.

    prepare -> stage the manifest (streamed, in chunks) -> plan each chunk (fingerprints,
        ledger: reuse, resume, dedupe) -> [a dry run stops here with the cost]
        -> per chunk, side by side: submit | poll + download -> write results -> report

Run it from the CLI (`img2svg convert`), from a deployment (`prefect.yaml`), or call
`convert(manifest=...)` from Python. Its parameters are `img2svg.run.parameters.RunParameters`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows.run import (
    CHUNK_THREADS,
    RUN_STOPPERS,
    ShardsStopped,
    exclusive_run,
    prepare_run,
    run_name,
    run_workspace,
)
from flows.shards import convert_in_shards
from flows.steps import convert_chunks, cost, plan_chunks
from img2svg.finish.summary import RunSummary
from img2svg.run.parameters import RunParameters, takes
from tasks.finish import publish_report, write_results
from tasks.manifest import stage_manifest


@flow(
    name="img2svg-convert",
    flow_run_name=run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=CHUNK_THREADS),
    validate_parameters=True,
)
@takes(RunParameters, returns=State)
def convert(**given: Any) -> State:
    try:
        return _convert(RunParameters(**given))
    except RUN_STOPPERS as stopped:  # the user's to fix: one message, the error as the result
        return Failed(message=str(stopped), data=stopped)


def _convert(params: RunParameters) -> State:
    run = prepare_run(params)  # who pays, where things live; nothing spent yet
    if run.params.shards > 1 and not run.params.dry_run:
        summary = convert_in_shards(run)  # this same pipeline, a shard per worker
    else:
        with exclusive_run(run), run_workspace(run) as workspace:
            staged = stage_manifest(run.source, workspace, run.params.rows_per_chunk)
            plan = plan_chunks(run, staged)
            if run.params.dry_run:
                return cost(plan)
            convert_chunks(run, staged, plan)  # per chunk: submit | poll + download
            summary = write_results(
                workspace, staged.chunks, run.out, run.params.mode, run.task_ledger, run.title
            )
    publish_report(summary, run.artifacts)
    return judged(summary, run.params.max_failure_ratio)


def judged(summary: RunSummary, max_failure_ratio: float) -> State:
    """Completed, or Failed when more than `max_failure_ratio` of the rows did not succeed or a
    reason every shard met stopped the run (its result is then that reason, as an error)."""
    if summary.stopped_by:
        return Failed(message=summary.stopped_by, data=ShardsStopped(summary.stopped_by))
    message = f"{summary.succeeded}/{summary.total} succeeded; results in {summary.results_parquet}"
    if summary.failure_ratio > max_failure_ratio:
        return Failed(
            message=f"{message}; failure ratio {summary.failure_ratio:.1%} exceeds "
            f"{max_failure_ratio:.1%} (see {summary.failures_csv})",
            data=summary,
        )
    return Completed(message=message, data=summary)
