"""What the ledger needs from a database, so its transitions are written once.

The ledger's SQL is portable (`ON CONFLICT ... DO UPDATE`, `?` placeholders) and a dialect runs
it: each one opens its connection and migrates the schema, runs one write transaction (retried
where the database may ask for it), looks up many keys at once within its parameter limits and
holds named locks that die with the process. One connection guarded by a lock serves every
thread, as the SQLite ledger always did.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

Row = Mapping[str, Any]
T = TypeVar("T")


class Dialect(ABC):
    for_update = ""  # appended to a SELECT that must lock its row until the transaction ends

    def __init__(self) -> None:
        self._guard = threading.RLock()  # re-entered by the statements of a write transaction

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        """Run one statement and return its cursor (fetchone, fetchall, rowcount)."""

    @abstractmethod
    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abstractmethod
    def write(self, work: Callable[[], T]) -> T:
        """Run `work` (statements through this dialect) as one write transaction."""

    @abstractmethod
    def select_in(self, table: str, column: str, values: list[str]) -> list[Row]:
        """Rows of `table` whose `column` is one of `values`."""

    @abstractmethod
    def lock(self, name: str, *, wait: bool, what: str) -> AbstractContextManager[None]:
        """Hold the named lock until the block ends or the process dies."""

    @abstractmethod
    def close(self) -> None: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        with self._guard:
            return self._execute(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._guard:
            return self._execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run a statement that changes rows; returns how many it changed."""
        with self._guard:
            return self._execute(sql, params).rowcount

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._guard:
            self._executemany(sql, rows)


def holder_message(what: str, holder: str) -> str:
    """A lock's refusal message: `what`, its `{holder}` field filled (not str.format: a path
    in `what` may hold braces)."""
    return what.replace("{holder}", holder)
