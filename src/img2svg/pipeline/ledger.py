"""The durable record of what a catalog's runs have submitted and produced.

The API bills every task, so a rerun after a crash must know exactly what was already submitted.
Each distinct (backend, image fingerprint, mode) is one *submission*; manifest rows point at
submissions, so duplicates within a manifest share one task. Every change is one SQLite
transaction, committed before the pipeline moves on: `submitting` is recorded before the POST
(with its idempotency key) and `submitted` with the task id right after the answer, so a crash
at any point leaves a readable ledger that says what to poll and what to resend.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUBMITTING = "submitting"  # POST about to be sent (or sent, answer unknown)
SUBMITTED = "submitted"  # the API gave a task id; poll it, never resubmit
DONE_STATES = frozenset({"succeeded", "failed", "rejected"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    key           TEXT PRIMARY KEY,
    api_url       TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    mode          TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    state         TEXT NOT NULL,
    task_id       TEXT,
    sub_task_id   TEXT,
    svg_url       TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    submitted_at  REAL,
    finished_at   REAL
);
CREATE TABLE IF NOT EXISTS rows (
    row_id        TEXT PRIMARY KEY,
    key           TEXT NOT NULL,
    status        TEXT NOT NULL,
    svg_path      TEXT,
    svg_sha256    TEXT,
    updated_at    REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Submission:
    key: str
    api_url: str
    fingerprint: str
    mode: str
    idem_key: str
    state: str
    task_id: str | None
    sub_task_id: str | None
    svg_url: str | None
    error: str | None
    attempts: int
    created_at: float
    submitted_at: float | None
    finished_at: float | None


@dataclass(frozen=True)
class RowRecord:
    row_id: str
    key: str
    status: str
    svg_path: str | None
    svg_sha256: str | None
    updated_at: float


def submission_key(api_url: str, fingerprint: str, mode: str) -> str:
    return hashlib.sha256(f"{api_url}\n{fingerprint}\n{mode}".encode()).hexdigest()


class Ledger:
    """Thread-safe: the batches of a run share one connection under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

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

    def row(self, row_id: str) -> RowRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM rows WHERE row_id = ?", (row_id,)).fetchone()
        return RowRecord(**row) if row else None

    def begin(self, key: str, *, api_url: str, fingerprint: str, mode: str, idem_key: str) -> None:
        """Record the intent to submit, before the POST leaves."""
        with self._tx() as db:
            db.execute(
                "INSERT INTO submissions (key, api_url, fingerprint, mode, idem_key, state, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "idem_key = excluded.idem_key, state = excluded.state, task_id = NULL, "
                "sub_task_id = NULL, svg_url = NULL, error = NULL, submitted_at = NULL, "
                "finished_at = NULL",
                (key, api_url, fingerprint, mode, idem_key, SUBMITTING, time.time()),
            )

    def submitted(self, key: str, task_id: str, sub_task_id: str | None, attempts: int) -> None:
        self._update(
            key,
            state=SUBMITTED,
            task_id=task_id,
            sub_task_id=sub_task_id,
            attempts=attempts,
            submitted_at=time.time(),
        )

    def finished(
        self, key: str, state: str, *, svg_url: str | None = None, error: str | None = None
    ) -> None:
        self._update(key, state=state, svg_url=svg_url, error=error, finished_at=time.time())

    def record_row(
        self, row_id: str, key: str, status: str, svg_path: str | None, svg_sha256: str | None
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO rows (row_id, key, status, svg_path, svg_sha256, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (row_id, key, status, svg_path, svg_sha256, time.time()),
            )

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
