"""One run at a time per output directory.

Two runs over the same `--out` would both plan the same images as new and both pay for them;
the ledger's run lock makes the second one stop at once with a clear message instead. The lock
lives with the ledger (`Ledger.run_lock`), so it also holds across machines sharing a
PostgreSQL ledger; this module keeps the older entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from img2svg.pipeline.ledger import Ledger, RunInProgress

__all__ = ["RunInProgress", "exclusive_run"]


@contextmanager
def exclusive_run(ledger_location: Path | str, out: str) -> Iterator[None]:
    """Hold `Ledger(ledger_location).run_lock(out)` for the block (RunInProgress if taken)."""
    with Ledger(ledger_location) as ledger, ledger.run_lock(out):
        yield
