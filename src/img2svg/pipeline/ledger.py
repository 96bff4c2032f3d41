"""The durable record of what a catalog's runs have submitted and produced.

The API bills every task, so a rerun after a crash must know exactly what was already submitted.
Each distinct (image fingerprint, mode) is one *submission*; manifest rows point at submissions,
so duplicates within a manifest share one task and an unchanged image is not converted twice.
Every change is one named transition, one SQLite transaction, committed before the pipeline
moves on:

    claim          -> submitting   the POST is about to go on the wire (after every wait)
    submitted      -> submitted    the API answered with a task id: poll it, never resubmit
    unconfirmed    -> unconfirmed  the POST left but its answer was lost, against an API that
                                   does not dedupe: a task may exist; never resent automatically
    not_created    -> refused      refused, or surely never sent: nothing was created
    succeeded      -> succeeded    the SVG is written (its hash recorded)
    finished       -> failed | rejected | lost

A claim is a compare-and-set on the idempotency key: one key goes on the wire once, unless the
API dedupes it. A crash at any point leaves a readable ledger that says what to poll, what to
resend and what may have been billed.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class State(StrEnum):
    SUBMITTING = "submitting"  # POST on the wire, or sent and the run stopped before its answer
    SUBMITTED = "submitted"  # the API gave a task id: poll it, never resubmit
    UNCONFIRMED = "unconfirmed"  # sent, answer lost, API does not dedupe: maybe billed
    SUCCEEDED = "succeeded"  # SVG downloaded, checked and written (svg_path, svg_sha256)
    FAILED = "failed"  # task_status 3: worth another try on the next run
    REJECTED = "rejected"  # task_status 4: moderation would say no again; only --force retries
    LOST = "lost"  # the service no longer knows the task: resubmit on the next run
    REFUSED = "refused"  # the POST was refused (4xx, code != 0, 401): nothing was created


SUBMITTING, SUBMITTED = State.SUBMITTING, State.SUBMITTED

# PRAGMA user_version: 1 = first release; 2 adds submissions.token_id (which token submitted);
# 3 adds rows.svg_size/svg_mtime_ns (an SVG is known intact from a stat, as git's index does)
# and file_hashes (a local image is re-read only when its size or mtime changed); 4 adds
# submissions.flags (what the pipeline noticed about the SVG, e.g. `sanitized`).
SCHEMA_VERSION = 4

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
    finished_at   REAL
);
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
"""


@dataclass(frozen=True)
class Submission:
    key: str
    fingerprint: str
    mode: str
    backend: str  # which service holds task_id: its URL, or the embedded service's data dir
    idem_key: str
    state: str
    task_id: str | None
    sub_task_id: str | None
    svg_url: str | None
    svg_path: str | None
    svg_sha256: str | None
    error: str | None
    attempts: int
    token_id: str | None  # a hash naming the token that submitted (the API may scope tasks by it)
    flags: str
    created_at: float
    submitted_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class RowRecord:
    """The SVG a manifest row last received, so a rerun can check it is still there and intact."""

    row_id: str
    key: str
    svg_path: str
    svg_sha256: str
    updated_at: float
    svg_size: int | None = None  # size and mtime when written: unchanged means intact
    svg_mtime_ns: int | None = None


RowWrite = tuple[str, str, str, str] | tuple[str, str, str, str, int | None, int | None]


def _padded(entry: RowWrite) -> tuple[object, ...]:
    return (*entry, None, None) if len(entry) == 4 else entry


def submission_key(fingerprint: str, mode: str) -> str:
    return hashlib.sha256(f"{fingerprint}\n{mode}".encode()).hexdigest()


class Ledger:
    """One SQLite file; safe to open from several threads or processes at once (WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=60.0
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._migrate()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the ledger {self.path} was written by a newer img2svg (schema {version})"
            )
        added = {
            "submissions": [("token_id", "TEXT"), ("flags", "TEXT NOT NULL DEFAULT ''")],
            "rows": [("svg_size", "INTEGER"), ("svg_mtime_ns", "INTEGER")],  # version 3
        }
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master")}
        for table, new_columns in added.items():
            if table not in tables:
                continue
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for name, kind in new_columns:
                if name not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def submission(self, key: str) -> Submission | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM submissions WHERE key = ?", (key,)).fetchone()
        return Submission(**row) if row else None

    def submissions(self, keys: list[str]) -> dict[str, Submission]:
        return {r["key"]: Submission(**r) for r in self._select_in("submissions", "key", keys)}

    def _select_in(self, table: str, column: str, values: list[str]) -> list[sqlite3.Row]:
        """Rows whose `column` is one of `values`, in chunks SQLite's parameter limit allows."""
        found: list[sqlite3.Row] = []
        with self._lock:
            for start in range(0, len(values), 500):
                chunk = values[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT * FROM {table} WHERE {column} IN ({marks})"
                found.extend(self._db.execute(query, chunk))
        return found

    def row(self, row_id: str) -> RowRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM rows WHERE row_id = ?", (row_id,)).fetchone()
        return RowRecord(**row) if row else None

    def claim(
        self,
        key: str,
        *,
        fingerprint: str,
        mode: str,
        backend: str,
        idem_key: str,
        token_id: str | None,
        resend_ok: bool,
    ) -> Submission | None:
        """Record that the POST carrying `idem_key` is about to leave; None when it may.

        A key goes on the wire once: if the ledger already holds this key, sent (or being sent)
        by a retry of this batch, by an earlier run or by another process, the claim is refused
        and that submission is returned, unless nothing was created with it (`refused`) or the
        API dedupes resent keys (`resend_ok`) and it is still waiting for its answer.
        """
        with self._tx() as db:
            row = db.execute("SELECT * FROM submissions WHERE key = ?", (key,)).fetchone()
            if row is not None and row["idem_key"] == idem_key:
                resendable = row["state"] == State.REFUSED or (
                    resend_ok and row["state"] == SUBMITTING and row["backend"] == backend
                )
                if not resendable:
                    return Submission(**row)
            db.execute(
                "INSERT INTO submissions (key, fingerprint, mode, backend, idem_key, state, "
                "token_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO "
                "UPDATE SET backend = excluded.backend, idem_key = excluded.idem_key, "
                "state = excluded.state, token_id = excluded.token_id, task_id = NULL, "
                "sub_task_id = NULL, svg_url = NULL, error = NULL, submitted_at = NULL, "
                "finished_at = NULL",
                (key, fingerprint, mode, backend, idem_key, SUBMITTING, token_id, time.time()),
            )
        return None

    def submitted(self, key: str, task_id: str, sub_task_id: str | None, attempts: int) -> None:
        self._update(
            key,
            state=SUBMITTED,
            task_id=task_id,
            sub_task_id=sub_task_id,
            attempts=attempts,
            submitted_at=time.time(),
        )

    def succeeded(
        self, key: str, *, svg_url: str, svg_path: str, svg_sha256: str, flags: str = ""
    ) -> None:
        self._update(
            key,
            state=State.SUCCEEDED,
            svg_url=svg_url,
            svg_path=svg_path,
            svg_sha256=svg_sha256,
            flags=flags,
            error=None,
            finished_at=time.time(),
        )

    def unconfirmed(self, key: str, error: str) -> None:
        """The POST left and its answer never came: a task may exist (and be billed)."""
        self._update(key, state=State.UNCONFIRMED, error=error)

    def not_created(self, key: str, error: str) -> None:
        """The POST was refused, or surely never reached the API: no task exists."""
        self._update(key, state=State.REFUSED, error=error, finished_at=time.time())

    def finished(self, key: str, state: State, error: str | None = None) -> None:
        """A terminal outcome of a task without an SVG: failed, rejected or lost."""
        self._update(key, state=state, error=error, finished_at=time.time())

    def record_rows(self, entries: list[RowWrite]) -> None:
        """Rows whose SVG has just been written: (row_id, key, svg_path, svg_sha256, size,
        mtime_ns), the last two None where the store cannot tell them cheaply."""
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO rows (row_id, key, svg_path, svg_sha256, svg_size, "
                "svg_mtime_ns, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*_padded(entry), now) for entry in entries],
            )

    def rows_of(self, key: str, limit: int = 5) -> list[RowRecord]:
        """Some rows that hold this submission's SVG: copies to restore a missing one from."""
        with self._lock:
            found = self._db.execute(
                "SELECT * FROM rows WHERE key = ? LIMIT ?", (key, limit)
            ).fetchall()
        return [RowRecord(**r) for r in found]

    def file_hashes(self, paths: list[str]) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of local images hashed by earlier runs."""
        return {
            r["path"]: (r["size"], r["mtime_ns"], r["sha256"])
            for r in self._select_in("file_hashes", "path", paths)
        }

    def remember_file_hashes(self, entries: list[tuple[str, int, int, str]]) -> None:
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO file_hashes (path, size, mtime_ns, sha256) "
                "VALUES (?, ?, ?, ?)",
                entries,
            )

    def rows(self, row_ids: list[str]) -> dict[str, RowRecord]:
        return {r["row_id"]: RowRecord(**r) for r in self._select_in("rows", "row_id", row_ids)}

    def _update(self, key: str, **fields: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self._tx() as db:
            db.execute(f"UPDATE submissions SET {sets} WHERE key = ?", [*fields.values(), key])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) FROM submissions GROUP BY state"
            ).fetchall()
        return {state: n for state, n in rows}
