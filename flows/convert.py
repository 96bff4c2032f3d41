"""The conversion flow: manifest in, SVGs + results table + failure report out.

    stage manifest (streamed, in chunks) -> plan each chunk (fingerprints, ledger: reuse,
        resume, dedupe) -> per chunk, side by side: submit | poll + download
        -> write results (streamed) -> report

Tasks are given the run's workspace (a path) and a chunk number, never lists of rows, so a run
holds one chunk at a time whatever the catalog's size. Run it from the CLI (`img2svg convert`),
from a deployment (`prefect.yaml`), or call `convert(...)` from Python.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Literal, TypeVar

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.blocks.system import Secret
from prefect.futures import PrefectFuture, wait
from prefect.runtime import deployment, flow_run
from prefect.states import Completed, Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from img2svg.client import Throttle
from img2svg.convert import progress
from img2svg.convert.backend import (
    Credentials,
    backend_identity,
    default_rate_limit,
    open_backend,
    resends_are_free,
    run_credentials,
)
from img2svg.convert.chunks import close_chunk, close_unsent
from img2svg.finish.summary import RunSummary
from img2svg.plan.decide import PlanOptions
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stage.manifest import ManifestSource, open_manifest
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import (
    SHARD_DEPLOYMENT,
    check_shardable,
    is_shared_ledger,
    keep_password_in_process,
    ledger_location,
    workspace_dir,
)
from img2svg.stores.workspace import Staged, Workspace
from tasks.convert import poll_chunk, submit_chunk
from tasks.limits import SHARED_LIMIT, forget, shared_limit_exists, throttle_for
from tasks.manifest import stage_manifest
from tasks.plan import plan_chunk
from tasks.report import export_part, publish_report, write_results
from tasks.score import score_svgs

# Chunk tasks in flight at once (each a thread); a chunk's submit and poll tasks run together,
# and one more thread scores the run's SVGs as they arrive.
CHUNK_THREADS = 9


def run_name() -> str:
    """'<manifest name> <UTC date and time>', so runs are told apart in the UI."""
    manifest = str(flow_run.parameters.get("manifest", "manifest"))
    stem = PurePosixPath(manifest.rstrip("/")).stem or "manifest"
    return f"{stem} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


@flow(
    name="img2svg-convert",
    flow_run_name=run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=CHUNK_THREADS),
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
    version_column: str | None = None,
    fingerprint: Literal["url", "head"] = "url",
    batch_size: int = 10_000,
    concurrency: int = 8,
    rate_limit: float | None = None,
    max_in_flight: int | None = None,
    poll_timeout: float = 600.0,
    max_failure_ratio: float = 0.25,
    force: bool = False,
    dry_run: bool = False,
    limit: int | None = None,
    resubmit_unconfirmed: bool = False,
    submission_limit: str | None = SHARED_LIMIT,
    allow_local_paths: list[str] | None = None,
    ledger: str | None = None,
    ledger_block: str | None = None,
    shards: int = 1,
    shard_deployment: str = SHARD_DEPLOYMENT,
    score: bool = True,
) -> State:
    """Convert every image of a manifest to SVG.

    Args:
        manifest: CSV or Parquet file (local path or fsspec URL) with one image per row.
        out: Output directory or fsspec URL for svgs/, results.parquet/.csv and failures.csv.
        mode: "fast" (small files) or "slow" (higher fidelity).
        api_url: Base URL of a HiDream-compatible API; empty with no token = embedded service.
            A stored token is only ever sent to its own API: naming another one here fails
            the run, and nothing is sent.
        token_block: Name of a Prefect Secret block holding the API token (else the
            HIDREAM_API_TOKEN environment variable): a plain token is bound to HiDream; JSON
            {"api_url": ..., "token": ...} binds the token to that API.
        image_column: Manifest column with the image URL, path or data: URI.
        id_column: Manifest column with a unique row id; default: a hash of the image.
        version_column: Manifest column that changes when an image URL's content does (etag,
            updated_at, checksum): with the URL, what tells an unchanged image.
        fingerprint: "url" (the URL and version column, no network) or "head" (also the
            ETag / Last-Modified of a HEAD request to each image URL).
        batch_size: Rows per chunk: the unit of planning, submitting and polling.
        concurrency: HTTP requests in flight at once across the run.
        rate_limit: Submissions per minute; default 20 (HiDream) for a remote API, none for
            the embedded service; 0 = no limit.
        max_in_flight: Tasks in flight at once (the account's concurrency: HiDream allows 1
            to 10); default: learned from the API's 429 answers.
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
        allow_local_paths: Folders local images may be read from besides the manifest's
            own; a row naming a file anywhere else is invalid, never read.
        ledger: Where the record of what was paid lives: a SQLite path (default: beside the
            outputs) or postgresql://user@host/db, shared by every machine and deployment
            (default: $IMG2SVG_LEDGER_URL). Give no password here: the worker's PGPASSWORD,
            ~/.pgpass or $IMG2SVG_LEDGER_URL supplies it, or use ledger_block.
        ledger_block: Name of a Prefect Secret block holding the ledger's URL.
        shards: Split the catalog into this many shards, each a flow run of the shard
            deployment on the work pool (any free worker, any machine); needs a PostgreSQL
            ledger and an --out (and manifest) every worker reaches. --limit is shared out
            evenly between the shards.
        shard_deployment: The deployment the shards run as ("flow name/deployment name").
        score: Score every new SVG against its source (ssim, psnr, paths; flags such as
            low_fidelity) for the results and report.html; False skips it (no CPU spent).
    """
    logger = get_run_logger()
    _img2svg_logs_at_prefect_level()
    run = prepare_run(
        manifest,
        out,
        mode=mode,
        api_url=api_url,
        token_block=token_block,
        columns=(image_column, id_column, version_column),
        settings=RunSettings(
            mode=mode,
            concurrency=concurrency,
            poll_timeout_s=poll_timeout,
            max_in_flight=max_in_flight,
            allow_local_paths=tuple(allow_local_paths or ()),
        ),
        force=force,
        limit=limit,
        resubmit_unconfirmed=resubmit_unconfirmed,
        ledger=ledger,
        ledger_block=ledger_block,
    )
    if shards > 1 and not dry_run:  # a dry run only reads: one process plans it all
        check_shardable(manifest, out, run.ledger, shards)
        from flows.shards import convert_in_shards

        summary = convert_in_shards(run, shards, shard_deployment, batch_size)
    else:
        if not run.outputs.is_local and not is_shared_ledger(run.ledger):
            logger.warning(
                "the ledger of %s is kept on this machine, at %s: a run on another machine "
                "will not see what this one submitted (use --ledger postgresql://...)",
                run.outputs.out,
                run.ledger,
            )
        # A dry run writes nothing, so it may look while another run works.
        # Two runs over the same output would both plan the same images as new and both pay.
        with nullcontext() if dry_run else _exclusive_run(run.ledger, run.outputs.out):
            done = convert_here(
                run,
                fingerprint=fingerprint,
                batch_size=batch_size,
                rate_limit=rate_limit,
                submission_limit=submission_limit,
                dry_run=dry_run,
                score=score,
            )
        if isinstance(done, dict):  # the dry run's plan
            return Completed(message=_dry_run_message(done), data=done)
        summary = done
    publish_report(summary, run.artifacts)
    message = f"{summary.succeeded}/{summary.total} succeeded; results in {summary.results_parquet}"
    if summary.failure_ratio > max_failure_ratio:
        return Failed(
            message=f"{message}; failure ratio {summary.failure_ratio:.1%} exceeds "
            f"{max_failure_ratio:.1%} (see {summary.failures_csv})",
            data=summary,
        )
    return Completed(message=message, data=summary)


@dataclass(frozen=True)
class PreparedRun:
    """What every part of a run agrees on before anything is spent: small, picklable values."""

    manifest: str
    source: ManifestSource
    outputs: OutputStore
    credentials: Credentials
    settings: RunSettings
    options: PlanOptions
    ledger: str  # a SQLite path or a PostgreSQL URL (may hold a password: never a parameter)
    artifacts: str
    shard: tuple[int, int] | None = None


def prepare_run(
    manifest: str,
    out: str,
    *,
    mode: str,
    api_url: str | None,
    token_block: str | None,
    columns: tuple[str, str | None, str | None],
    settings: RunSettings,
    force: bool,
    limit: int | None,
    resubmit_unconfirmed: bool,
    ledger: str | None,
    ledger_block: str | None,
    shard: tuple[int, int] | None = None,
    embedded: bool = False,
) -> PreparedRun:
    """`embedded`: the local engine, whatever API URL or token the environment holds."""
    outputs = OutputStore(out)
    credentials = (
        Credentials()
        if embedded
        else run_credentials(
            api_url,
            block_name=token_block,
            block_value=Secret.load(token_block).value.get_secret_value() if token_block else None,
            deployed=deployment.id is not None,
        )
    )
    block_url = Secret.load(ledger_block).get() if ledger_block else None
    options = PlanOptions(
        mode=mode,
        backend=backend_identity(credentials, outputs, shard),
        force=force,
        limit=limit,
        resend_interrupted=resends_are_free(credentials),
        resubmit_unconfirmed=resubmit_unconfirmed,
    )
    return PreparedRun(
        manifest=manifest,
        source=open_manifest(manifest, *columns),
        outputs=outputs,
        credentials=credentials,
        settings=settings,
        options=options,
        ledger=ledger_location(ledger, outputs, block_value=block_url),
        artifacts=artifact_key_prefix(manifest, deployment.name),
        shard=shard,
    )


def convert_here(
    run: PreparedRun,
    *,
    fingerprint: str,
    batch_size: int,
    rate_limit: float | None,
    submission_limit: str | None,
    dry_run: bool = False,
    part: str | None = None,
    score: bool = True,
) -> RunSummary | dict[str, int] | int:
    """The pipeline in this process: the whole run, or one shard's rows. Returns the plan's
    counts for a dry run, the rows handed back in `part` for a shard, else the run's summary."""
    logger = get_run_logger()
    settings, options, out = run.settings, run.options, run.outputs.out
    workspace = str(workspace_dir(run.ledger) / f"{uuid.uuid4()}.sqlite3")
    ledger = keep_password_in_process(run.ledger)  # tasks get it without: see placement
    try:
        staged: Staged = stage_manifest(run.source, workspace, batch_size, run.shard)
        logger.info("%d rows from %s, in %d chunks", staged.rows, run.manifest, staged.chunks)
        for chunk in range(staged.chunks):  # in order: the first row of an image leads
            plan_chunk.submit(
                workspace,
                chunk,
                settings=settings,
                options=options,
                fingerprint=fingerprint,
                out=out,
                ledger_location=ledger,
            ).result()
        counts, busy = _plan_counts(workspace)
        logger.info("plan: %s", counts)
        if dry_run:
            return counts
        if busy:  # else nothing to send, so no service to start
            with open_backend(
                run.credentials, run.outputs, options.backend, options.resend_interrupted, run.shard
            ) as endpoint:
                settings = replace(
                    settings,
                    rate_limit_per_minute=default_rate_limit(endpoint, rate_limit),
                    shared_limit=_shared_limit(endpoint, submission_limit),
                )
                logger.info("converting with %r, %s", endpoint, settings)
                _convert_chunks(
                    busy, workspace, endpoint, settings, out, ledger, run.artifacts, score
                )
        elif score:  # nothing to convert; reused SVGs an older ledger never scored are scored
            wait([score_svgs.submit(workspace, list(range(staged.chunks)), settings, out, ledger)])
        if part is not None:
            return export_part(workspace, staged.chunks, out, ledger, part)
        title = PurePosixPath(run.manifest.rstrip("/")).name
        return write_results(workspace, staged.chunks, out, settings.mode, ledger, title)
    finally:
        _remove(workspace)


def _convert_chunks(
    chunks: list[int],
    workspace: str,
    endpoint: Endpoint,
    settings: RunSettings,
    out: str,
    ledger: str,
    artifacts: str,
    score: bool,
) -> None:
    """Submit, poll (and score) every chunk that has work, each chunk's tasks side by side."""
    run_key = str(flow_run.id or uuid.uuid4())
    try:
        with Workspace(workspace) as work:
            every_chunk = list(range(work.chunk_count()))
        scores = score_svgs.submit(workspace, every_chunk, settings, out, ledger) if score else None
        submits: dict[int, PrefectFuture[int]] = {}
        polls: dict[int, PrefectFuture[None]] = {}
        for chunk in chunks:
            submits[chunk] = submit_chunk.submit(
                workspace, chunk, endpoint, settings, run_key, ledger
            )
            polls[chunk] = poll_chunk.submit(
                workspace, chunk, endpoint, settings, out, run_key, ledger
            )
        _follow(
            submits,
            polls,
            workspace,
            throttle=throttle_for(run_key, settings),
            key=f"{artifacts}-progress",
        )
        if scores is not None:
            wait([scores])  # scoring that failed costs rows their scores, not their results
    finally:
        forget(run_key)


def _follow(
    submits: dict[int, PrefectFuture[int]],
    polls: dict[int, PrefectFuture[None]],
    workspace: str,
    throttle: Throttle,
    key: str,
) -> None:
    """Wait for every chunk's poll, reporting progress. A chunk whose submit task failed for
    good has its unsent rows closed as errors (its poller then stops once the sent ones end);
    one whose poll task failed for good keeps its rows, as errors with the reason."""
    with Workspace(workspace) as work:
        started = time.monotonic()
        total = sum(work.counts().values())
        every = max(1.0, 10 * (time.monotonic() - started))  # counting must stay cheap
        artifact_id = _in_ui(
            "create the progress artifact",
            lambda: create_progress_artifact(
                progress=0.0, key=key, description=f"Rows finished of {total}"
            ),
        )
        shown = -1.0
        pending = dict(polls)
        unsent = dict(submits)
        while True:
            counts = work.counts()
            done = total - sum(n for s, n in counts.items() if s in ("pending", "submitted"))
            progress.report(done, total, counts)
            share = round(100.0 * done / max(total, 1))
            if artifact_id is not None and share != shown:
                shown = share
                _in_ui(
                    "update the progress artifact",
                    lambda share=share: update_progress_artifact(
                        artifact_id=artifact_id, progress=share
                    ),
                )
            if not pending and not unsent:
                return
            finished, _ = wait([*pending.values(), *unsent.values()], timeout=every)
            for chunk, future in list(unsent.items()):
                if future.state.is_failed() or future.state.is_crashed():
                    del unsent[chunk]
                    message = future.state.message
                    close_unsent(
                        work, chunk, f"not submitted: its chunk's submit failed: {message}"
                    )
                elif future.state.is_final():
                    del unsent[chunk]
            for chunk, future in list(pending.items()):
                if future not in finished:
                    continue
                del pending[chunk]
                if future.state.is_failed() or future.state.is_crashed():
                    reason = f"the chunk's poll task failed: {future.state.message}"
                    close_chunk(work, chunk, reason, throttle)


def artifact_key_prefix(manifest: str, deployment_name: str | None) -> str:
    """'img2svg-<deployment, or adhoc>-<manifest stem>', in Prefect's key alphabet (lowercase
    letters, digits, dashes), so that each deployment and catalog keeps its own latest
    artifacts. A deployment named img2svg-... is not prefixed twice."""
    where = _slug(deployment_name or "").removeprefix("img2svg-") or "adhoc"
    stem = _slug(PurePosixPath(manifest.rstrip("/")).stem) or "manifest"
    return f"img2svg-{where[:40].strip('-')}-{stem[:60].strip('-')}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _img2svg_logs_at_prefect_level() -> None:
    """Prefect gives its extra loggers (PREFECT_LOGGING_EXTRA_LOGGERS=img2svg, set by the CLI
    and prefect.yaml) the handler to the Prefect API but no level, so they would keep the root's
    WARNING: those of img2svg get Prefect's own level (PREFECT_LOGGING_LEVEL)."""
    from prefect.settings import PREFECT_LOGGING_EXTRA_LOGGERS

    level = logging.getLogger("prefect.extra").level
    for name in PREFECT_LOGGING_EXTRA_LOGGERS.value():
        if name.split(".")[0] == "img2svg" and logging.getLogger(name).level == logging.NOTSET:
            logging.getLogger(name).setLevel(level)


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


@contextmanager
def _exclusive_run(ledger_location: str, out: str) -> Iterator[None]:
    with Ledger(ledger_location) as ledger, ledger.run_lock(out):
        yield


def _plan_counts(workspace: str) -> tuple[dict[str, int], list[int]]:
    with Workspace(workspace) as work:
        return work.plan_counts(), work.chunks_with_work()


def _remove(workspace: str) -> None:
    path = Path(workspace)
    if path.exists():
        Workspace(path).remove()


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
