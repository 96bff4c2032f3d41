"""Nothing left behind: a killed run's workspace and half-written files, found and removed.

A run's workspace (`<ledger dir>/runs/<uuid>.sqlite3`, with its `-wal` and `-shm`) is removed
when the run ends; a run that is killed (SIGKILL, a machine gone) leaves it, and at a million
rows it is large. So a run holds a lease on its workspace, an exclusive lock on a `.lock` file
beside it taken before the workspace exists and dying with the process: a workspace whose lease
can be taken belongs to no live run, and the next run (or `img2svg gc`) removes it. A
workspace without a lease file was left by an older version; it is removed once it has not been
touched for an hour.

A killed writer may also leave a hidden temporary file (`svgs/.<name>.<hex>.tmp`, from
`fsutil`) in the outputs. Those are removed by whoever holds the output's run lock, so never
while a run writes there, and only once they are a minute old.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import WORKSPACE_SUFFIXES, remove_workspace_files

LEASE_SUFFIX = ".lock"
UNLEASED_AFTER_S = 3600.0
TEMPORARY_AFTER_S = 60.0


@dataclass
class Swept:
    """What a sweep removed, and what it left because a live run holds it."""

    workspaces: list[str] = field(default_factory=list)
    temporary: list[str] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    freed_bytes: int = 0


@contextlib.contextmanager
def workspace_lease(path: Path | str) -> Iterator[None]:
    """Hold the lease on the workspace at `path` while the block runs; release and remove the
    lease file after (the workspace itself is the caller's to remove)."""
    lease = Path(f"{path}{LEASE_SUFFIX}")
    lease.parent.mkdir(parents=True, exist_ok=True)
    while True:  # a sweeper may unlink the file between our open and our lock: take a new one
        fd = os.open(lease, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.fstat(fd).st_ino == lease.stat().st_ino:
                break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lease.unlink()
        os.close(fd)


def sweep_workspaces(runs: Path, swept: Swept | None = None, now: float | None = None) -> Swept:
    """Remove the workspaces in `runs` that belong to no live run."""
    swept = swept or Swept()
    now = time.time() if now is None else now
    if not runs.is_dir():
        return swept
    for database in sorted(runs.glob("*.sqlite3")):
        try:
            _sweep_one(database, swept, now)
        except OSError:  # not ours to remove (another user's, a read-only disk): left alone
            continue
    for lease in runs.glob(f"*.sqlite3{LEASE_SUFFIX}"):  # a lease whose run died before its file
        database = Path(str(lease).removesuffix(LEASE_SUFFIX))
        if not database.exists():
            with _taken(lease) as free, contextlib.suppress(OSError):
                if free:
                    lease.unlink()
    return swept


def _sweep_one(database: Path, swept: Swept, now: float) -> None:
    lease = Path(f"{database}{LEASE_SUFFIX}")
    if lease.exists():
        with _taken(lease) as free:
            if not free:
                swept.live.append(str(database))
                return
            swept.freed_bytes += remove_workspace_files(database)
            swept.workspaces.append(str(database))
            with contextlib.suppress(FileNotFoundError):
                lease.unlink()
    elif now - _mtime(database) > UNLEASED_AFTER_S:
        swept.freed_bytes += remove_workspace_files(database)
        swept.workspaces.append(str(database))


def sweep_temporary(
    outputs: OutputStore, swept: Swept | None = None, now: float | None = None
) -> Swept:
    """Remove hidden temporary files a killed writer left among the SVGs; the caller holds the
    output's run lock, so no run is writing there."""
    swept = swept or Swept()
    now = time.time() if now is None else now
    if not outputs.is_local:
        return swept  # object stores have no half-written files: a PUT lands whole or not at all
    svgs = Path(outputs.root) / "svgs"
    if not svgs.is_dir():
        return swept
    for entry in os.scandir(svgs):
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            stat = entry.stat()
            if now - stat.st_mtime > TEMPORARY_AFTER_S:
                with contextlib.suppress(OSError):  # gone already, or not ours to remove
                    os.unlink(entry.path)
                    swept.temporary.append(entry.path)
                    swept.freed_bytes += stat.st_size
    return swept


@contextlib.contextmanager
def _taken(lease: Path) -> Iterator[bool]:
    """Whether the lease could be taken (its run is gone); held for the block if so."""
    try:
        fd = os.open(lease, os.O_RDWR)
    except FileNotFoundError:
        yield True
        return
    except OSError:  # cannot even look (another user's): as good as held
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _mtime(path: Path) -> float:
    """The newest change to the workspace or its write-ahead log."""
    times = [0.0]
    for suffix in WORKSPACE_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):
            times.append(Path(f"{path}{suffix}").stat().st_mtime)
    return max(times)
