"""Write a local file so that it appears whole or not at all, even across a crash or power cut.

Every file img2svg records as done (an SVG behind a `succeeded` ledger row, `results.parquet`,
a service task's input image, the port file a parent polls) goes through here. Writing to a
temporary name and renaming it is enough when only the process dies; after a power cut the
rename can reach the disk before the data does, leaving an empty or truncated file behind a
recorded success. So the temporary file is fsynced before the rename, and the directory after
it, which makes the rename itself durable.

Files are created with mode `0o666` and the kernel applies the process umask, as `open()` does
(`tempfile.mkstemp` would give 0600). Nothing here reads or changes the umask, which is
process-wide and racy to read from threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "NoSpaceLeft",
    "atomic_path",
    "atomic_write",
    "ensure_room",
    "is_disk_full",
    "no_space_as",
]

StrPath = str | os.PathLike[str]

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class NoSpaceLeft(OSError):
    """A write failed for lack of space: the run stops sending work, and says where once."""

    def __init__(self, where: str) -> None:
        super().__init__(
            errno.ENOSPC,
            f"no space left on {where}: free some space (or use another --out), then run the "
            "same command again; what was already paid for is downloaded again, not paid again",
        )
        self.where = where

    def __str__(self) -> str:
        return str(self.strerror)


LOW_SPACE_BYTES = 16 << 20  # below this much room (or a quarter of a small disk), stop sending


def ensure_room(folder: str) -> None:
    """NoSpaceLeft when `folder`'s disk has too little room for the work already in flight to
    be recorded (its answers, SVGs and ledger entries): checked before each new submission, so
    a filling disk stops the run's spending before it stops its records."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return  # not there yet: its writer will say what is wrong
    if usage.free < min(LOW_SPACE_BYTES, usage.total // 4):
        raise NoSpaceLeft(folder)


@contextmanager
def no_space_as(where: str) -> Iterator[None]:
    """A write failing for lack of space in the block is raised as one `NoSpaceLeft(where)`,
    whatever said so (an OSError, SQLite); every other error passes as it is."""
    try:
        yield
    except Exception as exc:
        if is_disk_full(exc) and not isinstance(exc, NoSpaceLeft):
            raise NoSpaceLeft(where) from None
        raise


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says a disk (or quota) is full: an OSError, or SQLite's SQLITE_FULL."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return True
    return isinstance(exc, sqlite3.OperationalError) and (
        getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(exc)
    )


# Filesystems that cannot sync a directory say so with these; the file itself is synced anyway.
_DIR_SYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP})


def atomic_write(path: StrPath, data: bytes) -> None:
    """Replace `path` with `data`: a reader or a restart sees the old file or the new one."""
    target = os.fspath(path)
    fd, tmp = _create_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    _sync_directory(os.path.dirname(target))


@contextmanager
def atomic_path(path: StrPath) -> Iterator[str]:
    """A temporary path beside `path` to write to, for writers that want a file name.

    The file exists (empty) when yielded. On a clean exit it is fsynced and renamed over
    `path`, then the directory is fsynced; on an exception it is removed and `path` is left as
    it was.
    """
    target = os.fspath(path)
    fd, tmp = _create_temp(target)
    os.close(fd)
    try:
        yield tmp
        _sync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        _discard(tmp)
        raise
    _sync_directory(os.path.dirname(target))


def _create_temp(target: str) -> tuple[int, str]:
    """A new file in the target's directory (a rename across filesystems is not atomic)."""
    directory, name = os.path.split(target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        # Hidden and ending in `.tmp`, so a leftover from a killed writer matches no `*.svg`.
        tmp = os.path.join(directory, f".{name[:64]}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", target)


def _sync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(directory or ".", flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_SYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _discard(tmp: str) -> None:
    """Best effort, while another exception is on its way out: that one is what to report."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)
