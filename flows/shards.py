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
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.runtime import flow_run
from prefect.states import Crashed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.convert import CHUNK_THREADS, PreparedRun, _remove, convert_here, prepare_run
from img2svg.convert import progress
from img2svg.finish.summary import RunSummary
from img2svg.run.settings import HIDREAM_RATE_PER_MINUTE, RunSettings
from img2svg.stores.ledger import Ledger, RunInProgress
from img2svg.stores.placement import (
    check_shardable,
    part_location,
    parts_folder,
    without_password,
    workspace_dir,
)
from tasks.limits import SHARED_LIMIT, shared_limit_exists
from tasks.manifest import stage_manifest
from tasks.report import merge_results

# How often the parent looks at its shards, and how long a shard's lock may be free before the
# shard counts as dead: `Running`, it takes the lock within seconds; `Pending` (a worker took it
# and is starting its process), a slow start on a busy machine is given longer.
WATCH_EVERY_S = 1.0
DEAD_AFTER_S = {"RUNNING": 30.0, "PENDING": 120.0}
# Parameters of the parent that a shard does not take.
_PARENT_ONLY = {"shards", "shard_deployment", "dry_run", "max_failure_ratio"}


def shard_run_name() -> str:
    params = flow_run.parameters
    stem = PurePosixPath(str(params.get("manifest", "manifest")).rstrip("/")).stem
    k, n = int(params.get("shard", 0)), int(params.get("shards", 1))
    return f"{stem or 'manifest'} shard {k + 1}/{n} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


@flow(
    name="img2svg-shard",
    flow_run_name=shard_run_name,
    task_runner=ThreadPoolTaskRunner(max_workers=CHUNK_THREADS),
    validate_parameters=True,
)
def convert_shard(
    manifest: str,
    out: str,
    shard: int,
    shards: int,
    run_id: str,
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
    force: bool = False,
    limit: int | None = None,
    resubmit_unconfirmed: bool = False,
    submission_limit: str | None = SHARED_LIMIT,
    allow_local_paths: list[str] | None = None,
    ledger: str | None = None,
    ledger_block: str | None = None,
    score: bool = True,
    embedded: bool = False,
) -> int:
    """One shard of a split run (started by `img2svg-convert` with shards > 1, not by hand):
    converts the rows of shard `shard` of `shards` and writes them to the run's part file.
    The parameters are those of img2svg-convert, plus `embedded`: the parent runs on the local
    engine, so this shard starts its own service whatever its worker's environment holds."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
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
        shard=(shard, shards),
        embedded=embedded,
    )
    check_shardable(manifest, run.outputs.out, run.ledger, shards)
    logger = get_run_logger()
    with Ledger(run.ledger) as book:
        name = _shard_lock_name(run.outputs.out, shard, shards)
        # An earlier run's shard k may still be finishing (its parent stopped): it ends first,
        # so this one plans with everything it submitted.
        with book.lock(name, wait=True, what=f"shard {shard + 1}/{shards} of {run.outputs.out}"):
            logger.info("shard %d/%d of %s", shard + 1, shards, run.outputs.out)
            return int(
                convert_here(
                    run,
                    fingerprint=fingerprint,
                    batch_size=batch_size,
                    rate_limit=rate_limit,
                    submission_limit=submission_limit,
                    part=part_location(run_id, shard),
                    score=score,
                )
            )


def convert_in_shards(
    run: PreparedRun, shards: int, deployment_name: str, batch_size: int
) -> RunSummary:
    """The parent's side: start the shards, wait for them, merge what they hand back."""
    logger = get_run_logger()
    run_id = str(flow_run.id or uuid.uuid4())
    outputs = run.outputs
    workspace = str(workspace_dir(run.ledger) / f"{uuid.uuid4()}.sqlite3")
    with Ledger(run.ledger) as book, book.run_lock(outputs.out):
        try:
            staged = stage_manifest(run.source, workspace, batch_size)
            logger.info("%d rows from %s, in %d shards", staged.rows, run.manifest, shards)
            shared_quota = _shared_quota(run)
            children = [
                run_deployment(
                    deployment_name,
                    parameters=_shard_parameters(run, shards, k, run_id, shared_quota),
                    timeout=0,
                    idempotency_key=f"{run_id}-shard-{k}",
                )
                for k in range(shards)
            ]
            missing = _wait_for(children, book, outputs.out)
            return merge_results(
                workspace,
                shards,
                [part_location(run_id, k) for k in range(shards)],
                missing,
                outputs.out,
                run.settings.mode,
                PurePosixPath(run.manifest.rstrip("/")).name,
            )
        finally:
            _remove(workspace)
            outputs.remove_tree(parts_folder(run_id))


def _shard_parameters(
    run: PreparedRun, shards: int, shard: int, run_id: str, shared_quota: bool
) -> dict[str, Any]:
    """The parent's parameters for shard k, with what the parent decided pinned: the API it
    resolved (a worker's own HIDREAM_* environment must not send a shard elsewhere), the
    ledger without its password, and its share of --limit and of the API's quota."""
    params = {k: v for k, v in flow_run.parameters.items() if k not in _PARENT_ONLY}
    if params.get("limit") is not None:
        limit = int(params["limit"])
        params["limit"] = limit // shards + (shard < limit % shards)
    if not params.get("ledger_block"):
        params["ledger"] = without_password(run.ledger)  # the worker supplies the password
    params["api_url"] = run.credentials.url
    params["embedded"] = run.credentials.url is None
    if run.credentials.url and not shared_quota:
        # No global limit spreads the quota between the shards: each gets its share.
        rate = params.get("rate_limit")
        rate = HIDREAM_RATE_PER_MINUTE if rate is None else float(rate)
        params["rate_limit"] = rate / shards if rate > 0 else 0
        if params.get("max_in_flight"):
            params["max_in_flight"] = max(1, int(params["max_in_flight"]) // shards)
    return {**params, "out": run.outputs.out, "shard": shard, "shards": shards, "run_id": run_id}


def _shared_quota(run: PreparedRun) -> bool:
    """Whether the shards' submissions to a remote API share the global concurrency limit."""
    name = flow_run.parameters.get("submission_limit")
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


def _wait_for(children: Sequence[FlowRun], book: Ledger, out: str) -> dict[int, str]:
    """Wait until every shard ended; {shard: why its rows have no outcome} for those that
    did not complete. A shard `Running` or `Pending` whose ledger lock has been free for
    DEAD_AFTER_S lost its process (a worker killed, a machine gone): it is marked Crashed.
    A shard `Scheduled` waits for a worker, as long as it takes."""
    logger = get_run_logger()
    shards = len(children)
    pending = {k: child.id for k, child in enumerate(children)}
    missing: dict[int, str] = {}
    free_since: dict[int, float] = {}
    with get_client(sync_client=True) as client:
        while pending:
            for k, run_id in list(pending.items()):
                try:
                    child = client.read_flow_run(run_id)
                except Exception as exc:  # the Prefect API may blink: the shards go on
                    logger.warning("could not read shard %d's state (%s); retrying", k + 1, exc)
                    continue
                state = child.state
                if state is not None and state.is_final():
                    del pending[k]
                    if not state.is_completed():
                        missing[k] = (
                            f"shard {k + 1}/{shards} ({child.name}) ended {state.name}: "
                            f"{state.message or 'no message'}; run the same command again to "
                            "finish its rows (what it submitted is polled, not paid again)"
                        )
                    logger.info("shard %d/%d: %s", k + 1, shards, state.name)
                    continue
                grace = DEAD_AFTER_S.get(state.type.value) if state is not None else None
                if grace is None or _lock_held(book, out, k, shards):
                    free_since.pop(k, None)
                elif time.monotonic() - free_since.setdefault(k, time.monotonic()) > grace:
                    client.set_flow_run_state(
                        run_id,
                        Crashed(message="its process stopped: the shard's ledger lock came free"),
                        force=True,
                    )
            progress.report(shards - len(pending), shards, {"shards running": len(pending)})
            if pending:
                time.sleep(WATCH_EVERY_S)
    return missing


def _lock_held(book: Ledger, out: str, shard: int, shards: int) -> bool:
    try:
        with book.lock(_shard_lock_name(out, shard, shards), wait=False, what="probe"):
            return False
    except RunInProgress:
        return True


def _shard_lock_name(out: str, shard: int, shards: int) -> str:
    return f"img2svg-shard:{out}:{shard}/{shards}"
