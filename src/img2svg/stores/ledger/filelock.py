"""Named locks for a SQLite ledger: an flock'd file beside it.

The kernel drops an flock when its holder dies, SIGKILL included, so a crashed run never leaves
a stale lock behind. The holder writes its pid into the file, for the message a second one shows.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from img2svg.stores.ledger.dialect import holder_message
from img2svg.stores.ledger.errors import RunInProgress


def lock_file(ledger_dir: Path, name: str) -> Path:
    return ledger_dir / "locks" / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"


@contextmanager
def file_lock(ledger_dir: Path, name: str, *, wait: bool, what: str) -> Iterator[None]:
    path = lock_file(ledger_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = f"pid {handle.read().strip() or 'unknown'}"
            raise RunInProgress(holder_message(what, holder), holder) from None
        # In place, not with fsutil.atomic_write: renaming a new file over the lock file would
        # leave a second holder free to lock that one while we hold the old inode.
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
