"""One run's working set, on disk: every manifest row and every job of the run, in SQLite.

A catalog of a million rows does not fit in Python objects, nor in Prefect task parameters, so
the run stages the manifest here once and its tasks pass only (workspace path, chunk number).
Each task reads its chunk, does its work and writes its outcomes back; the submit and poll
tasks of a chunk talk through this file (and the ledger), never through shared objects.
Results are streamed out of it in manifest order at the end. The file lives beside the ledger
and is removed when the run ends.

    rows   one per manifest row: its id, the image, and either its own final status (invalid,
           reused...) or the key of the job that decides it
    jobs   one per distinct (image, mode) of the run: what to do (submit, poll or nothing) and
           what happened (status, task, SVG)
    chunks which rows belong together, and whether their submissions are all sent
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from img2svg.run.jobs import JOB_COLUMNS_SQL, JOB_FIELDS, JobRecord
from img2svg.run.rows import ManifestRow, RowStatus, shard_of

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    idx           INTEGER PRIMARY KEY,
    chunk         INTEGER NOT NULL,
    row_id        TEXT NOT NULL,
    image         TEXT NOT NULL,
    version       TEXT NOT NULL DEFAULT '',
    invalid       TEXT,
    key           TEXT,
    status        TEXT NOT NULL DEFAULT 'pending',
    error         TEXT
);
CREATE INDEX IF NOT EXISTS rows_chunk ON rows (chunk);
CREATE INDEX IF NOT EXISTS rows_key ON rows (key);
CREATE TABLE IF NOT EXISTS jobs (
    {jobs}
);
CREATE INDEX IF NOT EXISTS jobs_chunk ON jobs (chunk, action, status);
CREATE TABLE IF NOT EXISTS chunks (
    chunk         INTEGER PRIMARY KEY,
    rows          INTEGER NOT NULL,
    submit_done   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
""".replace("{jobs}", JOB_COLUMNS_SQL)


WORKSPACE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def remove_workspace_files(path: Path | str) -> int:
    """Delete a workspace's database and its SQLite companions; returns the bytes freed."""
    freed = 0
    for suffix in WORKSPACE_SUFFIXES:
        part = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            freed += part.stat().st_size
            part.unlink()
    return freed


@dataclass(frozen=True)
class Staged:
    """What staging found: a small value, fit for a Prefect task result."""

    workspace: str
    base: str
    rows: int
    chunks: int


WAL_PAGES = 32  # pages of write-ahead log between checkpoints (SQLite's default: 1000)


class Workspace:
    """Thread-safe; several tasks (threads or processes) may open the same file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=120.0
        )
        self.db.row_factory = sqlite3.Row
        self.db.create_function("shard_of", 2, shard_of, deterministic=True)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=OFF")  # scratch: the ledger is the durable record
        # A short write-ahead log: a full disk is met by the run's room check, not by a log
        # grown to SQLite's default 4 MB between checkpoints.
        self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
        self.db.execute(f"PRAGMA journal_size_limit={WAL_PAGES * 4096}")
        self.db.executescript(_SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(jobs)")}
        if "flags" not in columns:  # a workspace left behind by an earlier version
            self.db.execute("ALTER TABLE jobs ADD COLUMN flags TEXT NOT NULL DEFAULT ''")
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('created_at', ?)", (repr(time.time()),))

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def remove(self) -> None:
        self.close()
        remove_workspace_files(self.path)

    # -- staging -------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The workspace's connection, in one transaction, for a stage writing many rows."""
        with self._lock:
            self.db.execute("BEGIN")
            yield self.db
            self.db.execute("COMMIT")

    # -- the shards of a run -------------------------------------------------------------------

    def expect_shards(self, shards: int) -> None:
        """This workspace holds the whole manifest of a run split into `shards`: its results
        are the shards' (`add_part`), and a row no shard reported is an error, never dropped."""
        with self._lock:
            self.db.executescript(_PARTS_SCHEMA)
        self.set_meta("shards", str(shards))

    def add_part(self, rows: Iterable[dict[str, Any]]) -> int:
        """Rows of one shard's results (`PART_COLUMNS`), as the shard exported them."""
        count = 0
        with self._lock:
            self.db.execute("BEGIN")
            for batch in _batched(rows, 10_000):
                self.db.executemany(
                    f"INSERT OR REPLACE INTO parts ({', '.join(PART_COLUMNS)}) "
                    f"VALUES ({', '.join(':' + c for c in PART_COLUMNS)})",
                    batch,
                )
                count += len(batch)
            self.db.execute("COMMIT")
        return count

    def shard_missing(self, shard: int, reason: str) -> None:
        """Why the rows of a shard that reported nothing have no outcome."""
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO shard_outcomes (shard, reason) VALUES (?, ?)",
                (shard, reason),
            )

    @property
    def _shards(self) -> int | None:
        value = self.meta("shards")
        return int(value) if value else None

    def _results_select(self) -> str:
        shards = self._shards
        if shards is None:
            return _RESULTS_SELECT
        return _MERGED_SELECT.format(shards=int(shards))

    def add_rows(self, chunk: int, rows: list[ManifestRow]) -> None:
        with self.transaction():
            self.insert_rows(chunk, rows)

    def insert_rows(self, chunk: int, rows: list[ManifestRow]) -> None:
        """Within a `transaction()`: the rows of one chunk."""
        self.db.executemany(
            "INSERT INTO rows (idx, chunk, row_id, image, version, invalid) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(r.index, chunk, r.row_id, r.image, r.version, r.invalid_reason) for r in rows],
        )
        self.db.execute(
            "INSERT OR REPLACE INTO chunks (chunk, rows) VALUES (?, ?)", (chunk, len(rows))
        )

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    @property
    def created_at(self) -> float:
        """When the run that owns this workspace began (its first open)."""
        return float(self.meta("created_at") or 0)

    def meta(self, name: str) -> str | None:
        with self._lock:
            row = self.db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def chunk_rows(self, chunk: int) -> list[ManifestRow]:
        with self._lock:
            found = self.db.execute(
                "SELECT idx, row_id, image, invalid, version FROM rows WHERE chunk = ? "
                "ORDER BY idx",
                (chunk,),
            ).fetchall()
        return [ManifestRow(r[0], r[1], r[2], r[3], r[4]) for r in found]

    # -- planning ------------------------------------------------------------------------------

    def known_jobs(self, keys: list[str]) -> set[str]:
        """Which of these keys already have a job in this run (planned in an earlier chunk)."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(keys), 500):
                part = keys[start : start + 500]
                marks = ",".join("?" * len(part))
                found.update(
                    r[0]
                    for r in self.db.execute(f"SELECT key FROM jobs WHERE key IN ({marks})", part)
                )
        return found

    def count_jobs(self, action: str) -> int:
        with self._lock:
            (n,) = self.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE action = ?", (action,)
            ).fetchone()
        return int(n)

    def save_plan(
        self,
        settled: Iterable[tuple[int, str, str | None]],
        followers: Iterable[tuple[int, str]],
        jobs: Iterable[JobRecord],
    ) -> None:
        """One transaction: rows settled on their own (idx, status, error), rows that follow a
        job (idx, key), and the new jobs."""
        jobs = list(jobs)
        with self._lock:
            self.db.execute("BEGIN")
            self.db.executemany(
                "UPDATE rows SET status = ?, error = ?, key = NULL WHERE idx = ?",
                [(status, error, idx) for idx, status, error in settled],
            )
            self.db.executemany(
                "UPDATE rows SET key = ?, status = 'job' WHERE idx = ?",
                [(key, idx) for idx, key in followers],
            )
            if jobs:
                self.db.executemany(
                    f"INSERT INTO jobs ({', '.join(JOB_FIELDS)}) "
                    f"VALUES ({', '.join(':' + c for c in JOB_FIELDS)})",
                    [job.values() for job in jobs],
                )
            self.db.execute("COMMIT")

    # -- submitting and polling ----------------------------------------------------------------

    def jobs(self, chunk: int, status: str, action: str | None = None) -> list[JobRecord]:
        """The chunk's jobs in this status (and with this action), in the run's order: the
        manifest's, or `--order-by`'s (a job at its earliest row in that order)."""
        query = "SELECT * FROM jobs WHERE chunk = ? AND status = ?"
        params: tuple[object, ...] = (chunk, status)
        if action is not None:
            query, params = query + " AND action = ?", (*params, action)
        with self._lock:
            ordered = self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'row_order'"
            ).fetchone()
            order = (
                "(SELECT MIN(o.rank) FROM rows r JOIN row_order o ON o.idx = r.idx "
                "WHERE r.key = jobs.key), lead_idx"
                if ordered
                else "lead_idx"
            )
            found = self.db.execute(f"{query} ORDER BY {order}", params).fetchall()
        return [JobRecord.from_row(row) for row in found]

    def save_outcomes(self, outcomes: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """(key, {column: value}) for jobs whose state moved."""
        with self._lock:
            self.db.execute("BEGIN")
            for key, values in outcomes:
                sets = ", ".join(f"{c} = ?" for c in values)
                self.db.execute(f"UPDATE jobs SET {sets} WHERE key = ?", [*values.values(), key])
            self.db.execute("COMMIT")

    def chunks_with_work(self) -> list[int]:
        """Chunks with a job to submit or to poll, in order."""
        with self._lock:
            found = self.db.execute(
                "SELECT DISTINCT chunk FROM jobs WHERE action IN ('submit', 'poll') ORDER BY chunk"
            ).fetchall()
        return [r[0] for r in found]

    def mark_submitted(self, chunk: int) -> None:
        with self._lock:
            self.db.execute("UPDATE chunks SET submit_done = 1 WHERE chunk = ?", (chunk,))

    def submit_done(self, chunk: int) -> bool:
        with self._lock:
            row = self.db.execute(
                "SELECT submit_done FROM chunks WHERE chunk = ?", (chunk,)
            ).fetchone()
        return bool(row and row[0])

    def fail_unsent_jobs(self, chunk: int, reason: str, finished_at: float) -> None:
        """The chunk's jobs still waiting to be submitted end as errors (never sent)."""
        with self._lock:
            self.db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? "
                "WHERE chunk = ? AND status = 'pending' AND action = 'submit'",
                (str(RowStatus.ERROR), reason, finished_at, chunk),
            )

    def chunk_count(self) -> int:
        with self._lock:
            (n,) = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        return int(n)

    def fail_open_jobs(self, chunk: int, reason: str, finished_at: float) -> list[str]:
        """A chunk's task died after its retries: its jobs still open end as errors (their
        ledger entries stand, so the next run polls or holds them). Returns their keys."""
        with self._lock:
            keys = [
                r[0]
                for r in self.db.execute(
                    "SELECT key FROM jobs WHERE chunk = ? AND status IN ('pending', 'submitted')",
                    (chunk,),
                )
            ]
            self.db.execute(
                "UPDATE jobs SET status = ?, error = ?, finished_at = ? "
                "WHERE chunk = ? AND status IN ('pending', 'submitted')",
                (str(RowStatus.ERROR), reason, finished_at, chunk),
            )
        return keys

    # -- results -------------------------------------------------------------------------------

    def close_open_jobs(self, reason: str, finished_at: float) -> int:
        """Never leave a row without an outcome: jobs still open at the end are errors."""
        with self._lock:
            cursor = self.db.execute(
                "UPDATE jobs SET status = ?, error = COALESCE(error, ?), finished_at = ? "
                "WHERE status IN ('pending', 'submitted')",
                (str(RowStatus.ERROR), reason, finished_at),
            )
        return cursor.rowcount

    @contextmanager
    def results_view(self) -> Iterator[None]:
        """`results`: every row with its outcome, for the summary and failure queries."""
        with self._lock:
            self.db.execute(f"CREATE TEMP VIEW IF NOT EXISTS results AS {self._results_select()}")
            yield

    def results(self, batch: int = 10_000) -> Iterator[list[sqlite3.Row]]:
        """Every row with its outcome, in manifest order, `batch` rows at a time."""
        with self._lock:
            cursor = self.db.execute(self._results_select() + " ORDER BY r.idx")
            while rows := cursor.fetchmany(batch):
                yield rows

    def open_jobs(self, chunk: int) -> int:
        """The chunk's jobs still waiting to be submitted or to finish (0: all are final)."""
        with self._lock:
            (n,) = self.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE chunk = ? AND status IN ('pending', 'submitted')",
                (chunk,),
            ).fetchone()
        return int(n)

    def count_to_score(self) -> int:
        """Jobs of the run that may yet need a score: unscored successes and open jobs."""
        with self._lock:
            (n,) = self.db.execute(
                "SELECT COUNT(*) FROM jobs WHERE quality IS NULL "
                "AND status IN ('pending', 'submitted', 'succeeded')"
            ).fetchone()
        return int(n)

    def jobs_to_score(self, chunk: int) -> list[JobRecord]:
        """The chunk's succeeded jobs without scores (new, or reused from a ledger that had
        none)."""
        with self._lock:
            found = self.db.execute(
                "SELECT * FROM jobs "
                "WHERE chunk = ? AND status = 'succeeded' AND quality IS NULL ORDER BY lead_idx",
                (chunk,),
            ).fetchall()
        return [JobRecord.from_row(row) for row in found]

    def rows_of_succeeded_jobs(self, chunk: int) -> list[sqlite3.Row]:
        """(row_id, key, lead_row_id, svg_sha256) of the chunk's rows whose job succeeded."""
        with self._lock:
            return self.db.execute(
                "SELECT r.row_id, r.key, j.lead_row_id, j.svg_sha256 FROM rows r "
                "JOIN jobs j ON r.key = j.key WHERE r.chunk = ? AND j.status = 'succeeded' "
                "ORDER BY r.idx",
                (chunk,),
            ).fetchall()

    def mark_rows(self, row_ids_and_errors: list[tuple[str, str]]) -> None:
        """Rows whose SVG could not be written although their job succeeded: error."""
        with self._lock:
            self.db.executemany(
                "UPDATE rows SET status = 'error', error = ?, key = NULL WHERE row_id = ?",
                [(error, row_id) for row_id, error in row_ids_and_errors],
            )

    def tasks_paid(self) -> dict[str, float | None]:
        """The tasks this run created (a task id came back, by answer or callback): how many,
        and the span and mean duration of those seen to end, which time the account's quota."""
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(*), MIN(submitted_at), MAX(finished_at), "
                "AVG(CASE WHEN finished_at > submitted_at THEN finished_at - submitted_at END) "
                "FROM jobs WHERE action = 'submit' AND task_id IS NOT NULL"
            ).fetchone()
        tasks, first, last, mean = row
        span = last - first if first is not None and last is not None and last > first else None
        return {"tasks": int(tasks), "span_s": span, "mean_task_s": mean}

    def counts(self) -> dict[str, int]:
        """Final rows by status (a row with a job has the job's status)."""
        with self._lock:
            found = self.db.execute(
                f"SELECT status, COUNT(*) FROM ({self._results_select()}) GROUP BY 1"
            ).fetchall()
        return {status: n for status, n in found}

    def job_counts(self, chunk: int) -> dict[str, int]:
        """The chunk's jobs by status: what its poll task hands back."""
        with self._lock:
            found = self.db.execute(
                "SELECT status, COUNT(*) FROM jobs WHERE chunk = ? GROUP BY status", (chunk,)
            ).fetchall()
        return {status: n for status, n in found}

    def plan_counts(self, chunk: int | None = None) -> dict[str, int]:
        """What a plan costs, for one chunk or the whole run: the dry run's table. A job counts
        in its lead row's chunk, a row in its own, so the chunks' counts add up to the run's."""
        where, args = ("WHERE {}.chunk = ?", (chunk,)) if chunk is not None else ("", ())
        with self._lock:
            db = self.db
            jobs = dict(
                db.execute(
                    f"SELECT action, COUNT(*) FROM jobs j {where.format('j')} GROUP BY action",
                    args,
                ).fetchall()
            )
            rows = dict(
                db.execute(
                    "SELECT j.action, COUNT(*) FROM rows r JOIN jobs j ON r.key = j.key "
                    f"{where.format('r')} GROUP BY j.action",
                    args,
                ).fetchall()
            )
            settled_where = "AND r.chunk = ?" if chunk is not None else ""
            settled = db.execute(
                "SELECT CASE WHEN j.key IS NULL THEN r.status "
                "WHEN j.status = 'succeeded' AND j.reused = 1 THEN 'reused' ELSE j.status END, "
                "COUNT(*) FROM rows r LEFT JOIN jobs j ON r.key = j.key "
                f"WHERE (j.key IS NULL OR j.action = 'settled') {settled_where} GROUP BY 1",
                args,
            ).fetchall()
        return {
            "tasks_to_submit": jobs.get("submit", 0),
            "rows_to_submit": rows.get("submit", 0),
            "tasks_to_poll": jobs.get("poll", 0),
            "rows_to_poll": rows.get("poll", 0),
            **{f"rows_{name}": n for name, n in sorted((r[0], r[1]) for r in settled)},
        }


_RESULTS_SELECT = """
SELECT r.idx, r.row_id, r.image,
       COALESCE(j.status, r.status) AS status,
       CASE WHEN j.key IS NULL THEN r.error ELSE j.error END AS error,
       j.task_id, j.sub_task_id, j.svg_url, j.svg_bytes, j.attempts,
       j.submitted_at, j.finished_at,
       CASE WHEN j.key IS NULL THEN 0 WHEN j.lead_idx != r.idx THEN 1 ELSE j.reused END AS reused,
       COALESCE(j.flags, '') AS flags, j.key AS key, j.quality AS quality
FROM rows r LEFT JOIN jobs j ON r.key = j.key
"""

# A run split into shards: each row's outcome is its shard's; a row whose shard reported
# nothing is an error saying why (`shard_outcomes`), so every manifest row is in the results.
PART_COLUMNS = (
    "idx",
    "row_id",
    "status",
    "error",
    "task_id",
    "sub_task_id",
    "svg_url",
    "svg_bytes",
    "attempts",
    "submitted_at",
    "finished_at",
    "reused",
    "flags",
    "key",
    "quality",
)
_PARTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS parts (
    idx           INTEGER PRIMARY KEY,
    row_id        TEXT NOT NULL,
    status        TEXT NOT NULL,
    error         TEXT,
    task_id       TEXT,
    sub_task_id   TEXT,
    svg_url       TEXT,
    svg_bytes     INTEGER,
    attempts      INTEGER,
    submitted_at  REAL,
    finished_at   REAL,
    reused        INTEGER NOT NULL DEFAULT 0,
    flags         TEXT NOT NULL DEFAULT '',
    key           TEXT,
    quality       TEXT
);
CREATE TABLE IF NOT EXISTS shard_outcomes (shard INTEGER PRIMARY KEY, reason TEXT NOT NULL);
"""
_MERGED_SELECT = """
SELECT r.idx, r.row_id, r.image,
       CASE WHEN p.idx IS NULL THEN 'error' ELSE p.status END AS status,
       CASE WHEN p.idx IS NULL THEN COALESCE(s.reason, 'its shard reported no outcome for '
            || 'this row (did the manifest change during the run?)')
            ELSE p.error END AS error,
       p.task_id, p.sub_task_id, p.svg_url, p.svg_bytes, p.attempts,
       p.submitted_at, p.finished_at, COALESCE(p.reused, 0) AS reused,
       COALESCE(p.flags, '') AS flags, p.key AS key, p.quality AS quality
FROM rows r LEFT JOIN parts p ON p.idx = r.idx AND p.row_id = r.row_id
LEFT JOIN shard_outcomes s ON p.idx IS NULL AND s.shard = shard_of(r.image, {shards})
"""


def _batched(rows: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
