"""One run at a time per output directory.

Two runs over the same `--out` would both plan the same images as new and both pay for them;
the ledger's lock file makes the second one stop at once with a clear message instead.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RunInProgress(RuntimeError):
    """Another run holds the outputs' lock."""


@contextmanager
def exclusive_run(ledger_file: Path, out: str) -> Iterator[None]:
    lock_path = ledger_file.with_name("run.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunInProgress(
                f"another img2svg run (pid {holder}) is writing to {out}; wait for it to end "
                "or use another --out"
            ) from None
        # In place, not with fsutil.atomic_write: renaming a new file over the lock file would
        # leave a second run free to lock that one while we hold the old inode.
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
