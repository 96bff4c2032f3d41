"""Durable task state in SQLite under the data directory.

Every state change is one committed transaction, so a killed service restarts with an exact
picture of what was queued, running and done. The input image of an unfinished task is kept as a
file beside the database until the task ends, so queued work can be resumed after a restart.
Input images (`create`) and SVGs (`write_svg`) are written with `fsutil.atomic_write` (fsynced,
then renamed), so no row points at an empty or half-written file after a crash or power cut.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from img2svg.fsutil import atomic_write

WAITING, DONE, PROCESSING, FAILED, REJECTED = 0, 1, 2, 3, 4
TERMINAL = frozenset({DONE, FAILED, REJECTED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id      TEXT PRIMARY KEY,
    sub_task_id  TEXT NOT NULL UNIQUE,
    account      TEXT NOT NULL,
    user_id      TEXT,
    mode         TEXT NOT NULL,
    status       INTEGER NOT NULL,
    completion   REAL NOT NULL DEFAULT 0,
    outcome      TEXT NOT NULL DEFAULT 'convert',
    reason       TEXT,
    notify_url   TEXT,
    base_url     TEXT NOT NULL,
    svg_bytes    INTEGER,
    idem_key     TEXT,
    body_hash    TEXT,
    created_at   REAL NOT NULL,
    started_at   REAL,
    finished_at  REAL,
    UNIQUE (account, idem_key)
);
CREATE INDEX IF NOT EXISTS tasks_open ON tasks (status) WHERE status IN (0, 2);
"""


@dataclass(frozen=True)
class Task:
    task_id: str
    sub_task_id: str
    account: str
    user_id: str | None
    mode: str
    status: int
    completion: float
    outcome: str
    reason: str | None
    notify_url: str | None
    base_url: str
    svg_bytes: int | None
    idem_key: str | None
    body_hash: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class TaskStore:
    """Thread-safe: FastAPI handlers and the runner share one connection under a lock."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.inputs_dir = data_dir / "inputs"
        self.svgs_dir = data_dir / "svgs"
        for d in (self.data_dir, self.inputs_dir, self.svgs_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "tasks.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
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

    def input_path(self, task_id: str) -> Path:
        return self.inputs_dir / f"{task_id}.bin"

    def svg_path(self, sub_task_id: str) -> Path:
        return self.svgs_dir / f"{sub_task_id}.svg"

    def write_svg(self, sub_task_id: str, svg: bytes) -> Path:
        """Write a task's SVG whole, before the task is finished as DONE."""
        path = self.svg_path(sub_task_id)
        atomic_write(path, svg)
        return path

    def create(self, task: Task, image: bytes) -> Task:
        """Persist the input first, then the row: a row never points at a missing input."""
        atomic_write(self.input_path(task.task_id), image)
        columns = list(Task.__dataclass_fields__)
        with self._tx() as db:
            db.execute(
                f"INSERT INTO tasks ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})",
                [getattr(task, c) for c in columns],
            )
        return task

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM tasks WHERE task_id = ?", (task_id,)).fetchone()
        return Task(**row) if row else None

    def get_many(self, task_ids: list[str]) -> dict[str, Task]:
        if not task_ids:
            return {}
        marks = ", ".join("?" for _ in task_ids)
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM tasks WHERE task_id IN ({marks})", task_ids
            ).fetchall()
        return {row["task_id"]: Task(**row) for row in rows}

    def by_sub_task(self, sub_task_id: str) -> Task | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM tasks WHERE sub_task_id = ?", (sub_task_id,)
            ).fetchone()
        return Task(**row) if row else None

    def by_idempotency_key(self, account: str, key: str) -> Task | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM tasks WHERE account = ? AND idem_key = ?", (account, key)
            ).fetchone()
        return Task(**row) if row else None

    def count_open(self, account: str) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM tasks WHERE account = ? AND status IN (0, 2)", (account,)
            ).fetchone()
        return int(n)

    def update(self, task_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE tasks SET {sets} WHERE task_id = ?", [*fields.values(), task_id])

    def start(self, task_id: str) -> None:
        self.update(task_id, status=PROCESSING, completion=0.1, started_at=time.time())

    def finish(
        self, task_id: str, status: int, *, reason: str | None = None, svg_bytes: int | None = None
    ) -> None:
        self.update(
            task_id,
            status=status,
            completion=1.0 if status == DONE else 0.0,
            reason=reason,
            svg_bytes=svg_bytes,
            finished_at=time.time(),
        )
        self.input_path(task_id).unlink(missing_ok=True)

    def recover(self) -> tuple[list[str], list[str]]:
        """After a restart: requeue unfinished tasks whose input survived, fail the others.

        Returns (requeued task ids in creation order, failed task ids).
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT task_id FROM tasks WHERE status IN (0, 2) ORDER BY created_at"
            ).fetchall()
        requeued: list[str] = []
        failed: list[str] = []
        for row in rows:
            task_id = row["task_id"]
            if self.input_path(task_id).exists():
                self.update(task_id, status=WAITING, completion=0.0, started_at=None)
                requeued.append(task_id)
            else:
                self.finish(task_id, FAILED, reason="input image lost when the service restarted")
                failed.append(task_id)
        return requeued, failed
