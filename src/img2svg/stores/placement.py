"""Where a run keeps what it needs besides its outputs: the ledger, its workspace, the embedded
service's data, and the parts its shards hand back.

One machine: the ledger is a SQLite file beside local outputs (or in a local state directory
for an fsspec `--out`). Many machines: the ledger is a PostgreSQL database every worker
reaches, the outputs an fsspec URL (S3) or a filesystem mounted at the same path everywhere,
and each shard keeps its scratch (workspace, embedded service) on the worker that runs it.

The ledger's URL may carry a password: it never becomes a flow parameter with it. A shard is
given the URL without its password and finds the password where libpq looks (PGPASSWORD,
~/.pgpass) or in `IMG2SVG_LEDGER_URL` on its worker, or reads the whole URL from a Secret block.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from img2svg.stores.ledger.location import is_postgres
from img2svg.stores.outputs import OutputStore

LEDGER_URL_ENV = "IMG2SVG_LEDGER_URL"
STATE_DIR_ENV = "IMG2SVG_STATE_DIR"
LEDGER_FILE = ".img2svg/ledger.sqlite3"


class ShardingRefused(ValueError):
    """A run asked for shards without what shards need; nothing was started."""


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """This machine's own img2svg state (`IMG2SVG_STATE_DIR`, else ~/.cache/img2svg)."""
    env = os.environ if environ is None else environ
    return Path(env.get(STATE_DIR_ENV) or Path.home() / ".cache" / "img2svg")


def is_shared_ledger(location: str) -> bool:
    """A PostgreSQL ledger is shared by every machine that reaches it; a SQLite file is not."""
    return is_postgres(location)


def default_ledger(outputs: OutputStore) -> str:
    """With local outputs, the ledger sits beside them; else in the local state directory."""
    if outputs.is_local:
        return str(Path(outputs.root) / LEDGER_FILE)
    digest = hashlib.sha256(outputs.out.encode()).hexdigest()[:16]
    return str(state_dir() / "ledgers" / digest / "ledger.sqlite3")


def ledger_location(
    requested: str | None,
    outputs: OutputStore,
    *,
    block_value: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The ledger a run uses: a Secret block's URL, else `requested` (a path or URL; completed
    with the password of `IMG2SVG_LEDGER_URL` when that names the same database), else
    `IMG2SVG_LEDGER_URL`, else the SQLite file of `default_ledger`."""
    env = os.environ if environ is None else environ
    from_env = env.get(LEDGER_URL_ENV) or None
    if block_value:
        return block_value.strip()
    if requested:
        return with_password(requested, env)
    return from_env or default_ledger(outputs)


def with_password(location: str, environ: Mapping[str, str] | None = None) -> str:
    """A ledger location given without its password (a task's parameter), completed from
    `IMG2SVG_LEDGER_URL` when that names the same database; else as given (libpq then looks
    in PGPASSWORD and ~/.pgpass)."""
    env = os.environ if environ is None else environ
    from_env = env.get(LEDGER_URL_ENV) or None
    if from_env and without_password(from_env) == without_password(location):
        return from_env
    return location


def keep_password_in_process(location: str) -> str:
    """What may be handed to tasks and child runs: the location without its password, which
    stays in this process's environment for `with_password` to find."""
    bare = without_password(location)
    if bare != location:
        os.environ[LEDGER_URL_ENV] = location
    return bare


def without_password(location: str) -> str:
    """The URL with its password removed (`user:password@` and `?password=`): what may be
    passed to another process in the open. Multi-host URLs (h1:5432,h2:5432) are kept whole."""
    if not is_postgres(location):
        return location
    scheme, _, rest = location.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}@{hosts}"
    path, question, query = tail.partition("?")
    if question:
        kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "password"]
        query = urlencode(kept)
        question = "?" if kept else ""
    return f"{scheme}://{netloc}{slash}{path}{question}{query}"


def workspace_dir(ledger: str) -> Path:
    """Run workspaces: beside a SQLite ledger, else in this machine's state directory."""
    if is_shared_ledger(ledger):
        return state_dir() / "runs"
    return Path(ledger).parent / "runs"


def shard_service_dir(outputs: OutputStore, shard: tuple[int, int]) -> Path:
    """The embedded service of shard k of n of this output, on this machine: stable, so a rerun
    of the shard on the same worker polls the tasks its service already holds."""
    digest = hashlib.sha256(outputs.out.encode()).hexdigest()[:16]
    k, n = shard
    return state_dir() / "services" / f"{digest}-shard-{k}-of-{n}"


def shard_service_identity(outputs: OutputStore, shard: tuple[int, int]) -> str:
    """Names that service in the ledger, with its machine: another worker cannot poll it."""
    return f"embedded:{socket.gethostname()}:{shard_service_dir(outputs, shard)}"


def part_location(run_id: str, shard: int) -> str:
    """Where, in the shared output, a shard hands back its results to the run that split it."""
    return f"{parts_folder(run_id)}/shard-{shard}.parquet"


def parts_folder(run_id: str) -> str:
    return f".img2svg/parts/{run_id}"


def check_shardable(manifest: str, out: str, ledger: str, shards: int) -> None:
    """Shards run on other machines: they must all reach the manifest, the outputs and one
    ledger. Refuse at once what surely cannot be shared; an absolute path is taken to be on a
    filesystem every worker mounts at the same place."""
    if shards < 2:
        return
    if not is_shared_ledger(ledger):
        raise ShardingRefused(
            f"--shards {shards} needs a ledger every worker shares, so that no image is paid "
            "for twice: give --ledger postgresql://... (or set IMG2SVG_LEDGER_URL, or a Secret "
            "block in ledger_block); a SQLite ledger is one machine's"
        )
    for what, location in (("--out", out), ("the manifest", manifest)):
        if "://" not in location and not os.path.isabs(location):
            raise ShardingRefused(
                f"--shards {shards} needs {what} where every worker can reach it: an fsspec "
                f"URL (s3://bucket/...) or an absolute path on a shared filesystem, not the "
                f"relative path {location!r}"
            )
