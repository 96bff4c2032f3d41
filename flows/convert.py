"""The conversion flow: manifest in, SVGs + results table + failure report out.

    load manifest -> identify images -> plan (ledger: reuse, resume, dedupe)
        -> submit (per batch) -> poll + download (per batch) -> write results -> report

Run it from the CLI (`img2svg convert`), from a deployment (`prefect.yaml`), or call
`convert(...)` from Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Literal, TypeVar

from prefect import flow, get_run_logger, unmapped
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.blocks.system import Secret
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from img2svg.pipeline import progress
from img2svg.pipeline.backend import (
    backend_identity,
    default_rate_limit,
    ledger_path,
    open_backend,
    resends_are_free,
    token_from_env,
)
from img2svg.pipeline.manifest import Manifest
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Job, Plan
from img2svg.pipeline.report import RunSummary
from img2svg.pipeline.rows import RowState, RowStatus
from img2svg.pipeline.runlock import exclusive_run
from img2svg.pipeline.settings import Endpoint, RunSettings
from tasks.convert import poll_batch, submit_batch
from tasks.limits import SHARED_LIMIT, forget, shared_limit_exists
from tasks.manifest import load_manifest
from tasks.plan import identify_batch, plan_conversions
from tasks.report import publish_report, write_results

# Batches in flight at once (each a thread); the rows inside a batch run concurrently.
BATCH_THREADS = 8


def run_name() -> str:
    """'<manifest name> <UTC date and time>', so runs are told apart in the UI."""
    manifest = str(flow_run.parameters.get("manifest", "manifest"))
    stem = PurePosixPath(manifest.rstrip("/")).stem or "manifest"
    return f"{stem} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


@flow(
    name="img2svg-convert",
    flow_run_name=run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=BATCH_THREADS),
    validate_parameters=True,
)
def convert(
    manifest: str,
    out: str = "out",
    mode: Literal["fast", "slow"] = "fast",
    api_url: str | None = None,
    token_block: str | None = None,
    image_column: str = "image_url",
    id_column: str | None = None,
    batch_size: int = 50,
    concurrency: int = 8,
    rate_limit: float | None = None,
    poll_timeout: float = 600.0,
    max_failure_ratio: float = 0.25,
    force: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    resubmit_unconfirmed: bool = False,
    submission_limit: str | None = SHARED_LIMIT,
) -> State:
    """Convert every image of a manifest to SVG.

    Args:
        manifest: CSV or Parquet file (local path or fsspec URL) with one image per row.
        out: Output directory or fsspec URL for svgs/, results.parquet/.csv and failures.csv.
        mode: "fast" (small files) or "slow" (higher fidelity).
        api_url: Base URL of a HiDream-compatible API; empty with no token = embedded service.
        token_block: Name of a Prefect Secret block holding the API token (else the
            HIDREAM_API_TOKEN environment variable).
        image_column: Manifest column with the image URL, path or data: URI.
        id_column: Manifest column with a unique row id; default: a hash of the image.
        batch_size: Rows per task run.
        concurrency: HTTP requests in flight at once across the run.
        rate_limit: Submissions per minute; default 20 (HiDream) for a remote API, none for
            the embedded service; 0 = no limit.
        poll_timeout: Seconds a submitted row may take before it is marked timed_out.
        max_failure_ratio: The run ends Failed when more than this share of rows did not succeed.
        force: Convert every row again, even those whose image and mode are unchanged since a
            success (this pays for every task again).
        dry_run: Only count what would be submitted (the cost) and submit nothing.
        limit: Submit at most this many new tasks in this run; the rest are `skipped` and
            picked up by the next run.
        resubmit_unconfirmed: Submit again the `unconfirmed` rows (sent earlier, answer lost,
            maybe billed) and nothing else; use it after checking the account's task list.
        submission_limit: Name of a Prefect global concurrency limit (used as a rate limit)
            that every submission to a remote API takes a slot of, so that all runs of all
            deployments together stay within the API's quota; ignored if it does not exist.
    """
    logger = get_run_logger()
    outputs = OutputStore(out)
    token = Secret.load(token_block).get() if token_block else token_from_env()
    loaded: Manifest = load_manifest(manifest, image_column, id_column)
    logger.info("%d rows from %s", len(loaded.rows), manifest)
    settings = RunSettings(mode=mode, concurrency=concurrency, poll_timeout_s=poll_timeout)
    identified = [
        item
        for batch in identify_batch.map(
            _chunks(loaded.rows, batch_size), unmapped(loaded.base), unmapped(settings)
        ).result()
        for item in batch
    ]
    backend = backend_identity(api_url, token, outputs)
    ledger_file = ledger_path(outputs)
    if not outputs.is_local:
        logger.warning(
            "the ledger of %s is kept on this machine, at %s: a run on another machine "
            "will not see what this one submitted",
            outputs.out,
            ledger_file,
        )
    resendable = resends_are_free(api_url, token)
    # A dry run writes nothing, so it may look while another run works.
    with nullcontext() if dry_run else exclusive_run(ledger_file, outputs.out):
        plan: Plan = plan_conversions(
            loaded.rows,
            identified,
            settings=settings,
            out=out,
            ledger_file=str(ledger_file),
            backend=backend,
            force=force,
            limit=limit,
            dry_run=dry_run,
            resend_interrupted=resendable,
            resubmit_unconfirmed=resubmit_unconfirmed,
        )
        counts = plan.counts()
        logger.info("plan: %s", counts)
        if dry_run:
            return Completed(message=_dry_run_message(counts), data=counts)
        if plan.to_submit or plan.to_poll:
            with open_backend(api_url, token, outputs, backend, resendable) as endpoint:
                settings = replace(
                    settings,
                    rate_limit_per_minute=default_rate_limit(endpoint, rate_limit),
                    shared_limit=_shared_limit(endpoint, submission_limit),
                )
                logger.info("converting with %r, %s", endpoint, settings)
                states = _run_plan(plan, endpoint, settings, out, str(ledger_file), batch_size)
        else:  # nothing to send, so no service to start
            states = plan.settled + _collect([], [], plan.settled, len(plan.settled))
        summary: RunSummary = write_results(states, out)

    publish_report(summary)
    message = f"{summary.succeeded}/{summary.total} succeeded; results in {summary.results_parquet}"
    if summary.failure_ratio > max_failure_ratio:
        return Failed(
            message=f"{message}; failure ratio {summary.failure_ratio:.1%} exceeds "
            f"{max_failure_ratio:.1%} (see {summary.failures_csv})",
            data=summary,
        )
    return Completed(message=message, data=summary)


def _run_plan(
    plan: Plan,
    endpoint: Endpoint,
    settings: RunSettings,
    out: str,
    ledger_file: str,
    batch_size: int,
) -> list[RowState]:
    """Poll what earlier runs submitted, submit the rest; every row's final state."""
    run_key = str(flow_run.id or time.time())
    resumed = _chunks(plan.to_poll, batch_size)
    batches = [*resumed, *_chunks(plan.to_submit, batch_size)]
    try:
        # Each batch's poll is queued right behind its submit, so batches are polled (and
        # their short-lived SVG URLs downloaded) while later batches are still submitting.
        polled = []
        for i, jobs in enumerate(batches):
            if i >= len(resumed):
                jobs = submit_batch.submit(jobs, endpoint, settings, run_key, ledger_file)
            polled.append(poll_batch.submit(jobs, endpoint, settings, out, run_key, ledger_file))
        total = len(plan.settled) + sum(1 + len(j.followers) for b in batches for j in b)
        return plan.settled + _collect(polled, batches, plan.settled, total)
    finally:
        forget(run_key)


T = TypeVar("T")


def _in_ui(what: str, call: Callable[[], T]) -> T | None:
    """Progress in the Prefect UI is a courtesy: a hiccup of the Prefect API while showing it
    must not stop a run whose tasks are already paid for before its results are written."""
    try:
        return call()
    except Exception as exc:
        get_run_logger().warning(
            "could not %s (%s: %s); the run goes on", what, type(exc).__name__, exc
        )
        return None


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _shared_limit(endpoint: Endpoint, name: str | None) -> str | None:
    """The global limit to take slots of, when one is set up and the API is a shared one."""
    if endpoint.embedded or not name:
        return None
    if shared_limit_exists(name):
        return name
    get_run_logger().info(
        "no active global concurrency limit %r: this run paces its own submissions only "
        "(see README, 'Deploy with Prefect', to share one quota between runs)",
        name,
    )
    return None


def _dry_run_message(counts: dict[str, int]) -> str:
    return (
        f"dry run: would submit {counts['tasks_to_submit']} tasks "
        f"({counts['rows_to_submit']} rows) and poll {counts['tasks_to_poll']} already "
        "submitted; nothing was submitted"
    )


def _collect(
    polled: list[PrefectFuture[list[Job]]],
    batches: list[list[Job]],
    settled: list[RowState],
    total: int,
) -> list[RowState]:
    """Gather batch results as they finish, updating progress; a crashed batch keeps its rows."""
    artifact_id = _in_ui(
        "create the progress artifact",
        lambda: create_progress_artifact(
            progress=0.0, key="img2svg-progress", description=f"Rows finished of {total}"
        ),
    )
    batch_of = {future.task_run_id: batch for future, batch in zip(polled, batches, strict=True)}
    states: list[RowState] = []
    counts: dict[str, int] = {}
    for state in settled:
        counts[str(state.status)] = counts.get(str(state.status), 0) + 1

    def report() -> None:
        done = len(settled) + len(states)
        if artifact_id is not None:
            share = 100.0 * done / max(total, 1)
            _in_ui(
                "update the progress artifact",
                lambda: update_progress_artifact(artifact_id=artifact_id, progress=share),
            )
        progress.report(done, total, counts)

    report()
    for future in as_completed(polled):
        try:
            jobs = future.result()
            reason = "the batch ended without an outcome for this row"
        except Exception as exc:  # the batch task failed after its retries
            jobs = batch_of[future.task_run_id]
            reason = f"batch task failed: {exc}"
        for job in jobs:
            if not job.lead.status.final:  # never leave a row without a status
                job.lead.finish(RowStatus.ERROR, time.time(), reason)
        for job in jobs:
            for state in job.row_states():
                states.append(state)
                counts[str(state.status)] = counts.get(str(state.status), 0) + 1
        report()
    return states
