"""What can go wrong with a ledger, split by what the caller does about it.

    Exception
     ├── LedgerUnavailable      the database cannot be reached: retry later or fix the location
     └── RuntimeError
          ├── LedgerTooNew      written by a newer img2svg: upgrade; never write to it
          └── RunInProgress     a named lock is held elsewhere: wait, or work elsewhere

Messages name a location only through `location.describe`, so a password never shows.
"""

from __future__ import annotations


class LedgerUnavailable(Exception):
    """The ledger's database could not be opened or reached (the message has no password)."""


class LedgerTooNew(RuntimeError):
    """The ledger was written by a newer img2svg; an older one must not write to it."""


class RunInProgress(RuntimeError):
    """Another holder has the named lock (for the run lock: another run on the same outputs)."""

    def __init__(self, message: str, holder: str = "unknown") -> None:
        super().__init__(message)
        self.holder = holder  # "pid 123" (SQLite) or "pid 123 on host" (PostgreSQL)
