"""A run, prepared: what the whole-run flow and the shard flow agree on before anything is spent.

`prepare_run` turns the parameters into small, picklable values (the manifest's source, the
stores, the credentials the token is bound to, the plan's options); the rest of this module is
what both flows need around their stages: the run's workspace, its lock on the outputs, its
name in the UI, and a Prefect API that may blink.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import TypeVar

from prefect import get_run_logger
from prefect.blocks.system import Secret
from prefect.runtime import deployment, flow_run

from img2svg.blocks import load_token_block
from img2svg.convert.backend import (
    Credentials,
    TokenBindingError,
    backend_identity,
    resends_are_free,
    run_credentials,
)
from img2svg.fsutil import NoSpaceLeft
from img2svg.plan.decide import PlanOptions
from img2svg.run.notify import NotifyUrlError, notify_base
from img2svg.run.parameters import RunParameters
from img2svg.run.settings import RunSettings
from img2svg.stage.manifest import ManifestError, ManifestSource, open_manifest
from img2svg.stores.ledger import Ledger, LedgerUnavailable, RunInProgress
from img2svg.stores.leftovers import Swept, sweep_temporary, sweep_workspaces, workspace_lease
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import (
    ShardingRefused,
    is_shared_ledger,
    keep_password_in_process,
    ledger_location,
    workspace_dir,
)
from img2svg.stores.workspace import remove_workspace_files

T = TypeVar("T")

# Chunk tasks in flight at once (each a thread); a chunk's submit and poll tasks run together,
# and one more thread scores the run's SVGs as they arrive.
CHUNK_THREADS = 9


class ShardsStopped(Exception):
    """A shard failed for a reason every shard would meet; the others were cancelled."""


RUN_STOPPERS = (
    ShardsStopped,
    ManifestError,
    TokenBindingError,
    ShardingRefused,
    NotifyUrlError,
    RunInProgress,
    LedgerUnavailable,
    NoSpaceLeft,
)
"""What stops a run for a reason its user must fix (a setting, the ledger, the disk): the flow
ends Failed with the error as its result, and the CLI prints its one message (exit 2), with
no traceback. Every other exception is a bug, shown whole."""


@dataclass(frozen=True)
class PreparedRun:
    """What every part of a run agrees on before anything is spent: small, picklable values."""

    params: RunParameters
    source: ManifestSource
    outputs: OutputStore
    credentials: Credentials
    settings: RunSettings
    options: PlanOptions
    ledger: str  # a SQLite path or a PostgreSQL URL (may hold a password: never a parameter)
    artifacts: str
    shard: tuple[int, int] | None = None

    @property
    def out(self) -> str:
        return self.outputs.out

    @property
    def title(self) -> str:
        return PurePosixPath(self.params.manifest.rstrip("/")).name

    @property
    def task_ledger(self) -> str:
        """The ledger's location as tasks and child runs get it: without its password, which
        stays in this process's environment."""
        return keep_password_in_process(self.ledger)


def prepare_run(
    params: RunParameters, *, shard: tuple[int, int] | None = None, embedded: bool = False
) -> PreparedRun:
    """`embedded`: the local engine, whatever API URL or token the environment holds."""
    _img2svg_logs_at_prefect_level()
    if params.batch_size is not None:
        get_run_logger().warning("batch_size is deprecated: use chunk_size")
    outputs = OutputStore(params.out)
    if embedded:
        credentials = Credentials()
    else:  # a HiDream Credentials block (bound to its api_url) or a Secret block
        kind, value = load_token_block(params.token_block) if params.token_block else ("", None)
        credentials = run_credentials(
            params.api_url,
            block_name=params.token_block,
            block_value=value,
            block_kind=kind,
            deployed=deployment.id is not None,
        )
    block_url = Secret.load(params.ledger_block).get() if params.ledger_block else None
    ledger = ledger_location(params.ledger, outputs, block_value=block_url)
    if not outputs.is_local and not is_shared_ledger(ledger):
        get_run_logger().warning(
            "the ledger of %s is kept on this machine, at %s: a run on another machine will "
            "not see what this one submitted (use --ledger postgresql://...)",
            outputs.out,
            ledger,
        )
    settings = RunSettings(
        mode=params.mode,
        concurrency=params.concurrency,
        poll_timeout_s=params.poll_timeout,
        max_in_flight=params.max_in_flight,
        allow_local_paths=tuple(params.allow_local_paths or ()),
        notify_url=notify_base(params.notify_url),
        callback_grace_s=params.callback_grace,
    )
    options = PlanOptions(
        mode=params.mode,
        backend=backend_identity(credentials, outputs, shard),
        force=params.force,
        limit=params.limit,
        resend_interrupted=resends_are_free(credentials),
        resubmit_unconfirmed=params.resubmit_unconfirmed,
    )
    return PreparedRun(
        params=params,
        source=open_manifest(
            params.manifest,
            params.image_column,
            params.id_column,
            params.version_column,
            order_by=params.order_by,
            descending=params.descending,
        ),
        outputs=outputs,
        credentials=credentials,
        settings=settings,
        options=options,
        ledger=ledger,
        artifacts=artifact_key_prefix(params.manifest, deployment.name),
        shard=shard,
    )


@contextmanager
def run_workspace(run: PreparedRun) -> Iterator[str]:
    """A fresh workspace file for the run (beside the ledger), leased while the run lives and
    removed when it ends; workspaces of runs that died are removed first."""
    runs = workspace_dir(run.ledger)
    _report_sweep(sweep_workspaces(runs))
    path = runs / f"{uuid.uuid4()}.sqlite3"
    with workspace_lease(path):
        try:
            yield str(path)
        finally:
            remove_workspace_files(path)  # every task closed its connection


@contextmanager
def exclusive_run(run: PreparedRun) -> Iterator[None]:
    """One run at a time per output: two would both plan the same images as new and both pay.
    A dry run writes nothing, so it may look while another run works."""
    if run.params.dry_run:
        yield
        return
    with Ledger(run.ledger) as ledger, ledger.run_lock(run.out):
        _report_sweep(sweep_temporary(run.outputs))  # no run writes here now
        if heard := ledger.apply_callbacks():  # the plan then polls those tasks, unpaid
            get_run_logger().info("%d lost answers were recovered by their callbacks", heard)
        yield


def _report_sweep(swept: Swept) -> None:
    removed = len(swept.workspaces) + len(swept.temporary)
    if removed:
        get_run_logger().info(
            "removed what killed runs left: %d workspaces, %d temporary files (%.1f MB)",
            len(swept.workspaces),
            len(swept.temporary),
            swept.freed_bytes / 1e6,
        )


def run_id() -> str:
    """The flow run's id (a fresh one outside a flow run): what names the run's throttle and
    its shards."""
    return str(flow_run.id or uuid.uuid4())


def run_name() -> str:
    """'<manifest name> <UTC date and time>', so runs are told apart in the UI."""
    manifest = str(flow_run.parameters.get("manifest", "manifest"))
    stem = PurePosixPath(manifest.rstrip("/")).stem or "manifest"
    return f"{stem} {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"


def artifact_key_prefix(manifest: str, deployment_name: str | None) -> str:
    """'img2svg-<deployment, or adhoc>-<manifest stem>', in Prefect's key alphabet (lowercase
    letters, digits, dashes), so that each deployment and catalog keeps its own latest
    artifacts. A deployment named img2svg-... is not prefixed twice."""
    where = _slug(deployment_name or "").removeprefix("img2svg-") or "adhoc"
    stem = _slug(PurePosixPath(manifest.rstrip("/")).stem) or "manifest"
    return f"img2svg-{where[:40].strip('-')}-{stem[:60].strip('-')}"


def in_ui(what: str, call: Callable[[], T]) -> T | None:
    """Progress in the Prefect UI is a courtesy: a hiccup of the Prefect API while showing it
    must not stop a run whose tasks are already paid for before its results are written."""
    try:
        return call()
    except Exception as exc:
        get_run_logger().warning(
            "could not %s (%s: %s); the run goes on", what, type(exc).__name__, exc
        )
        return None


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
