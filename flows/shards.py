"""A catalog split into shards, each a flow run of the shard deployment on the work pool.

    parent: stage the manifest -> one shard flow run per shard (`run_deployment`) -> wait
        -> merge the shards' parts into one results table, failure report and summary
    shard k: the rows whose image hashes to k -> the same pipeline as a whole run (plan,
        submit | poll + download, one embedded service of its own) -> its part of the results

Prefect is the distributed engine: each shard runs on whichever worker of the pool is free, on
any machine, and shows in the UI under its parent. The shards share one PostgreSQL ledger, which
claims every image before its POST (one task per image however many shards meet it), and one
output (S3, or a shared filesystem). Rows naming the same image land in the same shard. A shard
whose worker died is noticed by its ledger lock coming free: its rows are errors saying to run
the same command again, which polls what it had submitted instead of paying for it twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run
from prefect.states import Cancelled, Cancelling, Crashed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.run import CHUNK_THREADS, PreparedRun, prepare_run, run_id, run_workspace
from flows.steps import convert_chunks, plan_chunks
from img2svg.convert import progress
from img2svg.convert.backend import check_shard_credentials
from img2svg.finish.summary import RunSummary
from img2svg.run.parameters import ShardSpec
from img2svg.run.settings import HIDREAM_RATE_PER_MINUTE
from img2svg.stores.ledger import Ledger, RunInProgress
from img2svg.stores.leftovers import sweep_temporary
from img2svg.stores.placement import (
    ShardingRefused,
    check_shardable,
    part_location,
    parts_folder,
    without_password,
)
from tasks.finish import export_part, merge_results
from tasks.limits import shared_limit_exists
from tasks.manifest import stage_manifest

# How often the parent looks at its shards, and how long a shard's lock may be free before the
# shard counts as dead: `Running`, it takes the lock within seconds, but on a loaded machine its
# start (imports, the manifest, a dead predecessor's lease) has been seen to take over 30 s;
# `Pending` (a worker took it and is starting its process) is given longer; `Cancelling`, one
# that never started has no process to stop.
WATCH_EVERY_S = 1.0
DEAD_AFTER_S = {"RUNNING": 60.0, "PENDING": 120.0, "CANCELLING": 30.0}


def shard_run_name() -> str:
    spec = flow_run.parameters.get("spec") or {}
    spec = spec if isinstance(spec, dict) else spec.model_dump()
    manifest = str(spec.get("parameters", {}).get("manifest", "manifest"))
    stem = PurePosixPath(manifest.rstrip("/")).stem
    k, n = int(spec.get("shard", 0)), int(spec.get("shards", 1))
    return f"{stem or 'manifest'} shard {k + 1}/{n} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


@flow(
    name="img2svg-shard",
    flow_run_name=shard_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=CHUNK_THREADS),
    validate_parameters=True,
)
def convert_shard(spec: ShardSpec) -> int:
    """One shard of a split run (started by img2svg-convert with shards > 1, not by hand):
    converts the rows of shard `spec.shard` and writes them to the run's part file; returns
    how many rows it handed back."""
    if not 0 <= spec.shard < spec.shards:
        raise ValueError(f"shard {spec.shard} is not one of 0..{spec.shards - 1}")
    run = prepare_run(spec.parameters, shard=(spec.shard, spec.shards), embedded=spec.embedded)
    check_shardable(run.params.manifest, run.out, run.ledger, spec.shards)
    with shard_lock(run, spec), run_workspace(run) as workspace:
        staged = stage_manifest(run.source, workspace, run.params.rows_per_chunk, run.shard)
        plan = plan_chunks(run, staged)
        convert_chunks(run, staged, plan)  # per chunk: submit | poll + download
        part = part_location(spec.run_id, spec.shard)
        return export_part(workspace, staged.chunks, run.out, run.task_ledger, part)


@contextmanager
def shard_lock(run: PreparedRun, spec: ShardSpec) -> Iterator[None]:
    """An earlier run's shard k may still be finishing (its parent stopped): it ends first, so
    this one plans with everything it submitted. The lock also tells the parent this shard is
    alive: it dies with the shard's process."""
    what = f"shard {spec.shard + 1}/{spec.shards} of {run.out}"
    with (
        Ledger(run.ledger) as book,
        book.lock(_shard_lock_name(run.out, spec.shard, spec.shards), wait=True, what=what),
    ):
        get_run_logger().info("%s", what)
        yield


def convert_in_shards(run: PreparedRun) -> RunSummary:
    """The parent's side: start the shards, wait for them, merge what they hand back."""
    params = run.params
    check_shardable(params.manifest, run.out, run.ledger, params.shards)
    if run.credentials.url is not None:
        check_shard_credentials(params.api_url, params.token_block)
    _check_deployment(params.shard_deployment)
    logger = get_run_logger()
    parent = run_id()
    with Ledger(run.ledger) as book, book.run_lock(run.out), run_workspace(run) as workspace:
        sweep_temporary(run.outputs)  # what killed writers left: no run writes here now
        try:
            staged = stage_manifest(run.source, workspace, params.rows_per_chunk)
            logger.info(
                "%d rows from %s, in %d shards", staged.rows, params.manifest, params.shards
            )
            shared_quota = _shared_quota(run)
            children = [
                run_deployment(
                    params.shard_deployment,
                    parameters={"spec": _shard_spec(run, k, parent, shared_quota).model_dump()},
                    timeout=0,
                    idempotency_key=f"{parent}-shard-{k}",
                )
                for k in range(params.shards)
            ]
            missing, stopped = _wait_for(children, book, run.out)
            summary = merge_results(
                workspace,
                params.shards,
                [part_location(parent, k) for k in range(params.shards)],
                missing,
                run.out,
                params.mode,
                run.title,
            )
            return replace(summary, stopped_by=stopped)
        finally:
            run.outputs.remove_tree(parts_folder(parent))


def _check_deployment(name: str) -> None:
    """The shard deployment must exist before any shard is asked for."""
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise ShardingRefused(
                f"the Prefect server has no deployment {name!r} to run the shards as: run "
                "`prefect deploy --all` from the repository root (README, 'Scale out'), or "
                "name another with --shard-deployment"
            ) from None


def _shard_spec(run: PreparedRun, shard: int, parent: str, shared_quota: bool) -> ShardSpec:
    """Shard k's spec: the parent's parameters with what the parent decided pinned: the API it
    resolved (a worker's own HIDREAM_* environment must not send a shard elsewhere) and its
    callback receiver, the ledger without its password, and its share of --limit and of the
    API's quota."""
    params = run.params
    shards = params.shards
    pinned: dict[str, Any] = {
        "out": run.out,
        "api_url": run.credentials.url,
        "notify_url": run.settings.notify_url,  # resolved here, $IMG2SVG_NOTIFY_URL included
    }
    if params.limit is not None:
        pinned["limit"] = params.limit // shards + (shard < params.limit % shards)
    if not params.ledger_block:
        pinned["ledger"] = without_password(run.ledger)  # the worker supplies the password
    if run.credentials.url and not shared_quota:
        # No global limit spreads the quota between the shards: each gets its share.
        rate = HIDREAM_RATE_PER_MINUTE if params.rate_limit is None else params.rate_limit
        pinned["rate_limit"] = rate / shards if rate > 0 else 0
        if params.max_in_flight:
            pinned["max_in_flight"] = max(1, params.max_in_flight // shards)
    return ShardSpec(
        parameters=params.model_copy(update=pinned),
        shard=shard,
        shards=shards,
        run_id=parent,
        embedded=run.credentials.url is None,
    )


def _shared_quota(run: PreparedRun) -> bool:
    """Whether the shards' submissions to a remote API share the global concurrency limit."""
    name = run.params.submission_limit
    if run.credentials.url is None or not name:
        return False
    if shared_limit_exists(name):
        return True
    get_run_logger().warning(
        "no active global concurrency limit %r: each of the shards gets an even share of the "
        "rate limit and of max_in_flight (see README, 'Deploy with Prefect', to share one "
        "quota between every run)",
        name,
    )
    return False


def _wait_for(
    children: Sequence[FlowRun], book: Ledger, out: str
) -> tuple[dict[int, str], str | None]:
    """Wait until every shard ended: ({shard: why its rows have no outcome} for those that did
    not complete, the reason every shard shares when one failed for it, else None).

    A shard `Running` or `Pending` whose ledger lock has been free for DEAD_AFTER_S lost its
    process (a worker killed, a machine gone): it is marked Crashed. One that cannot be read
    (the Prefect API is away) is waited for, never marked. A shard `Scheduled` waits for a
    worker, as long as it takes. A shard that fails for a reason every shard would meet (a
    token its worker refuses to send, an unreachable ledger) cancels the others: the run ends
    with that one reason."""
    logger = get_run_logger()
    shards = len(children)
    pending = {k: child.id for k, child in enumerate(children)}
    missing: dict[int, str] = {}
    free_since: dict[int, float] = {}
    stopped: str | None = None
    with get_client(sync_client=True) as client:
        while pending:
            for k, child_id in list(pending.items()):
                try:
                    child = client.read_flow_run(child_id)
                except Exception as exc:  # the Prefect API may blink: the shards go on
                    logger.warning("could not read shard %d's state (%s); retrying", k + 1, exc)
                    free_since.pop(k, None)  # unseen is not dead
                    continue
                state = child.state
                if state is not None and state.is_final():
                    del pending[k]
                    shared = None if state.is_completed() else _shared_failure(state.message)
                    if shared and stopped is None:
                        stopped = shared
                        logger.error("shard %d/%d: %s; cancelling the others", k + 1, shards,
                                     shared)  # fmt: skip
                        _cancel(client, [pending[j] for j in pending])
                    if not state.is_completed():
                        missing[k] = _why_missing(k, shards, child.name, state, stopped)
                    logger.info("shard %d/%d: %s", k + 1, shards, state.name)
                    continue
                grace = DEAD_AFTER_S.get(state.type.value) if state is not None else None
                if grace is None or _lock_held(book, out, k, shards):
                    free_since.pop(k, None)
                elif time.monotonic() - free_since.setdefault(k, time.monotonic()) > grace:
                    cancelled = state.type.value == "CANCELLING"  # never started, or gone
                    client.set_flow_run_state(
                        child_id,
                        Cancelled(message="cancelled: no process of it is left")
                        if cancelled
                        else Crashed(
                            message="its process stopped: the shard's ledger lock came free"
                        ),
                        force=True,
                    )
            progress.report(shards - len(pending), shards, {"shards running": len(pending)})
            if pending:
                time.sleep(WATCH_EVERY_S)
    return missing, stopped


# Failures every shard meets alike: the exception names that end a shard's message.
SHARED_FAILURES = ("TokenBindingError", "LedgerUnavailable", "ShardingRefused", "NotifyUrlError")


def _shared_failure(message: str | None) -> str | None:
    """The reason, when a shard's failure is one every shard would meet."""
    for name in SHARED_FAILURES:
        if message and f"{name}: " in message:
            return message.split(f"{name}: ", 1)[1].strip()
    return None


def _why_missing(k: int, shards: int, name: str, state: Any, stopped: str | None) -> str:
    if stopped is not None:
        return (
            f"not converted: the run stopped because {stopped}; fix it and run the same "
            "command again"
        )
    return (
        f"shard {k + 1}/{shards} ({name}) ended {state.name}: {state.message or 'no message'}; "
        "run the same command again to finish its rows (what it submitted is polled, not paid "
        "again)"
    )


def _cancel(client: Any, flow_run_ids: list[Any]) -> None:
    """Ask the shards to stop: a worker kills a `Cancelling` run's process; one not started
    yet is `Cancelled` at once."""
    for flow_run_id in flow_run_ids:
        try:
            run = client.read_flow_run(flow_run_id)
            waiting = run.state is None or run.state.type.value in ("SCHEDULED", "PAUSED")
            state = Cancelled() if waiting else Cancelling()  # a worker kills what it started
            client.set_flow_run_state(flow_run_id, state, force=True)
        except Exception as exc:  # a shard left running still ends on its own
            get_run_logger().warning("could not cancel shard run %s: %s", flow_run_id, exc)


def _lock_held(book: Ledger, out: str, shard: int, shards: int) -> bool:
    try:
        with book.lock(_shard_lock_name(out, shard, shards), wait=False, what="probe"):
            return False
    except RunInProgress:
        return True


def _shard_lock_name(out: str, shard: int, shards: int) -> str:
    return f"img2svg-shard:{out}:{shard}/{shards}"
