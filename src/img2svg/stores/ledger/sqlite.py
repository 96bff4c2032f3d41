"""The ledger in one SQLite file: WAL, so several threads and processes may open it at once.

Writers take the database's write lock up front (BEGIN IMMEDIATE), so a claim's read and write
see no other writer in between. A reserve file of 1 MiB sits beside the ledger: when its disk
fills up (the SVGs and the run's workspace usually share it), the reserve is given up, so the
ledger can still record the tasks already paid for while the run stops.

The schema version is `PRAGMA user_version`; a file of any earlier version is migrated in place
on open, inside that write lock, so two processes opening an old file at once do not both
alter it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from img2svg.stores.ledger.dialect import Dialect, Row, T
from img2svg.stores.ledger.errors import LedgerTooNew, LedgerUnavailable
from img2svg.stores.ledger.filelock import file_lock
from img2svg.stores.ledger.model import PAID_BEFORE_V6, SCHEMA_VERSION

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    key           TEXT PRIMARY KEY,
    fingerprint   TEXT NOT NULL,
    mode          TEXT NOT NULL,
    backend       TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    state         TEXT NOT NULL,
    task_id       TEXT,
    sub_task_id   TEXT,
    svg_url       TEXT,
    svg_path      TEXT,
    svg_sha256    TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    token_id      TEXT,
    flags         TEXT NOT NULL DEFAULT '',
    created_at    REAL NOT NULL,
    submitted_at  REAL,
    finished_at   REAL,
    quality       TEXT,
    callback      TEXT,
    paid          INTEGER NOT NULL DEFAULT 0,
    paid_again    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS submissions_callback ON submissions (callback);
CREATE TABLE IF NOT EXISTS rows (
    row_id        TEXT PRIMARY KEY,
    key           TEXT NOT NULL,
    svg_path      TEXT NOT NULL,
    svg_sha256    TEXT NOT NULL,
    updated_at    REAL NOT NULL,
    svg_size      INTEGER,
    svg_mtime_ns  INTEGER
);
CREATE INDEX IF NOT EXISTS rows_key ON rows (key);
CREATE TABLE IF NOT EXISTS file_hashes (
    path          TEXT PRIMARY KEY,
    size          INTEGER NOT NULL,
    mtime_ns      INTEGER NOT NULL,
    sha256        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS callbacks (
    token_hash        TEXT PRIMARY KEY,
    main_task_id      TEXT NOT NULL,
    sub_task_results  TEXT NOT NULL,
    received_at       REAL NOT NULL,
    repeats           INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    out           TEXT NOT NULL,
    started_at    REAL NOT NULL,
    ended_at      REAL NOT NULL,
    figures       TEXT NOT NULL
)
"""

# Columns later versions added to tables an older file already has (CREATE TABLE makes the rest).
_ADDED = {
    "submissions": [
        ("token_id", "TEXT"),  # version 2
        ("flags", "TEXT NOT NULL DEFAULT ''"),  # version 4
        ("quality", "TEXT"),  # version 5
        ("callback", "TEXT"),  # version 6
        ("paid", "INTEGER NOT NULL DEFAULT 0"),
        ("paid_again", "INTEGER NOT NULL DEFAULT 0"),
    ],
    "rows": [("svg_size", "INTEGER"), ("svg_mtime_ns", "INTEGER")],  # version 3
}

_CHUNK = 500  # values per IN (...): well under SQLite's parameter limit
RESERVE_SUFFIX = ".reserve"
WAL_PAGES = 32
_RESERVE_BYTES = 1 << 20
_RESERVE_SLICE = 32 << 10

log = logging.getLogger("img2svg.ledger")


def _release(reserve: Path) -> bool:
    """Give a slice of the reserve back to the disk; False when none is left."""
    try:
        size = reserve.stat().st_size
        if size == 0:
            reserve.unlink()
            return False
        os.truncate(reserve, max(0, size - _RESERVE_SLICE))
    except OSError:
        return False
    return True


def _keep_reserve(path: Path) -> None:
    """Make the reserve if it is missing: 1 MiB, or an eighth of the room left when that is
    less (a nearly full disk keeps most of its room for the run)."""
    if path.exists():
        return
    try:
        free = shutil.disk_usage(path.parent).free
        with path.open("wb") as handle:
            handle.write(b"\0" * min(_RESERVE_BYTES, free // 8))  # written: not sparse
    except OSError:
        path.unlink(missing_ok=True)


class SqliteDialect(Dialect):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=60.0
            )
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")  # as the workspace's
            self._db.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
        except (OSError, sqlite3.OperationalError) as exc:
            raise LedgerUnavailable(f"cannot open the ledger {path}: {exc}") from exc
        self._reserve = path.with_name(path.name + RESERVE_SUFFIX)
        _keep_reserve(self._reserve)
        self._migrate()

    def _version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return version

    def _migrate(self) -> None:
        if self._version() == SCHEMA_VERSION:
            return
        self.write(self._migrate_in_transaction)

    def _migrate_in_transaction(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise LedgerTooNew(
                f"the ledger {self.path} was written by a newer img2svg (schema {version})"
            )
        if version == SCHEMA_VERSION:  # another process migrated it while we waited
            return
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        for table, new_columns in _ADDED.items():
            if table not in tables:
                continue
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in new_columns:
                if name not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        if "submissions" in tables and version < 6:  # each task id it holds was one billed task
            self._db.execute(PAID_BEFORE_V6)
        # Statement by statement: executescript would commit the transaction first.
        for statement in _SCHEMA.split(";"):
            self._db.execute(statement)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _execute(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    def write(self, work: Callable[[], T]) -> T:
        while True:
            try:
                return self._write(work)
            except sqlite3.OperationalError as exc:
                # Room for what is already paid for, a slice at a time: other writers on the
                # disk may take some of it first.
                if exc.sqlite_errorcode != sqlite3.SQLITE_FULL or not _release(self._reserve):
                    raise
                log.warning("the disk of the ledger %s is full: using its reserve", self.path)

    def _write(self, work: Callable[[], T]) -> T:
        with self._guard:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # a full disk may have ended it
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def select_in(self, table: str, column: str, values: list[str]) -> list[Row]:
        found: list[Row] = []
        with self._guard:
            for start in range(0, len(values), _CHUNK):
                chunk = values[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT * FROM {table} WHERE {column} IN ({marks})"
                found.extend(self._db.execute(query, chunk))
        return found

    def lock(self, name: str, *, wait: bool, what: str) -> AbstractContextManager[None]:
        return file_lock(self.path.parent, name, wait=wait, what=what)

    def close(self) -> None:
        with self._guard:
            self._db.close()
