"""The durable record of what a catalog's runs have submitted and produced.

The API bills every task, so a rerun after a crash must know exactly what was already submitted.
Each distinct (image fingerprint, mode) is one *submission*; manifest rows point at submissions,
so duplicates within a manifest share one task and an unchanged image is not converted twice.
Every change is one named transition, one write transaction, committed before the pipeline
moves on:

    claim          -> submitting   the POST is about to go on the wire (after every wait)
    submitted      -> submitted    the API answered with a task id: poll it, never resubmit
    unconfirmed    -> unconfirmed  the POST left but its answer was lost, against an API that
                                   does not dedupe: a task may exist; never resent automatically
    called_back    -> submitted    the task's notify_url callback named its task id (the
                                   answer to the POST may have been lost): poll it, unpaid
    not_created    -> refused      refused, or surely never sent: nothing was created
    succeeded      -> succeeded    the SVG is written (its hash recorded)
    scored         (state kept)    the pipeline's fidelity scores and flags for the SVG
    finished       -> failed | rejected | lost

A claim is a compare-and-set on the idempotency key: one key goes on the wire once, unless the
API dedupes it, even when processes on several machines claim it at the same moment. A crash at
any point leaves a readable ledger that says what to poll, what to resend and what may have been
billed. The transitions are written once here; a dialect (SQLite file or PostgreSQL URL) runs them.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from img2svg.stores.ledger.dialect import Dialect
from img2svg.stores.ledger.location import check, describe, is_postgres
from img2svg.stores.ledger.model import (
    PAID_AGAIN_BY_CHOICE,
    SUBMITTED,
    SUBMITTING,
    CallbackOutcome,
    RowRecord,
    RowWrite,
    State,
    Submission,
    padded,
)

RUN_LOCK_MESSAGE = (
    "another img2svg run ({holder}) is writing to {out}; wait for it to end or use another --out"
)


def run_lock_name(out: str) -> str:
    """The one-run-per-output lock's name: several outputs may share one PostgreSQL ledger."""
    return f"run {out}"


def open_dialect(location: Path | str) -> Dialect:
    check(location)
    if is_postgres(location):
        from img2svg.stores.ledger.postgres import PostgresDialect  # psycopg only when used

        return PostgresDialect(str(location))
    from img2svg.stores.ledger.sqlite import SqliteDialect

    return SqliteDialect(Path(location))


class Ledger:
    """A SQLite file (a path) or a PostgreSQL database (a `postgresql://` URL), shared safely by
    threads, processes and, with PostgreSQL, machines."""

    def __init__(self, location: Path | str) -> None:
        self.location = location
        self._db = open_dialect(location)

    def __repr__(self) -> str:
        return f"Ledger({describe(self.location)!r})"

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def lock(self, name: str, *, wait: bool, what: str) -> AbstractContextManager[None]:
        """Hold the lock `name` for the block, against every process using this ledger.

        Released when the block ends or the process dies (SIGKILL included). When another holds
        it, `wait=False` raises RunInProgress(what), its `{holder}` field naming that holder
        (e.g. "pid 12" or "pid 12 on host-a"); `wait=True` blocks until it is free.
        """
        return self._db.lock(name, wait=wait, what=what)

    def run_lock(self, out: str) -> AbstractContextManager[None]:
        """One run at a time per output (`out` as OutputStore.out normalizes it): two runs over
        the same outputs would both plan the same images as new and both pay for them."""
        message = RUN_LOCK_MESSAGE.replace("{out}", out)
        return self.lock(run_lock_name(out), wait=False, what=message)

    def submission(self, key: str) -> Submission | None:
        row = self._db.one("SELECT * FROM submissions WHERE key = ?", (key,))
        return Submission(**row) if row else None

    def submissions(self, keys: list[str]) -> dict[str, Submission]:
        return {r["key"]: Submission(**r) for r in self._db.select_in("submissions", "key", keys)}

    def row(self, row_id: str) -> RowRecord | None:
        row = self._db.one("SELECT * FROM rows WHERE row_id = ?", (row_id,))
        return RowRecord(**row) if row else None

    def rows(self, row_ids: list[str]) -> dict[str, RowRecord]:
        return {r["row_id"]: RowRecord(**r) for r in self._db.select_in("rows", "row_id", row_ids)}

    def rows_of(self, key: str, limit: int = 5) -> list[RowRecord]:
        """Some rows that hold this submission's SVG: copies to restore a missing one from."""
        found = self._db.all("SELECT * FROM rows WHERE key = ? LIMIT ?", (key, limit))
        return [RowRecord(**r) for r in found]

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
        callback: str | None = None,
    ) -> Submission | None:
        """Record that the POST carrying `idem_key` is about to leave; None when it may.

        A key goes on the wire once: if the ledger already holds this key, sent (or being sent)
        by a retry of this batch, by an earlier run or by another process, the claim is refused
        and that submission is returned, unless nothing was created with it (`refused`) or the
        API dedupes resent keys (`resend_ok`) and it is still waiting for its answer.
        `callback` is the hash of the token this POST's notify_url carries.
        """

        now = time.time()  # also names this claim: see below

        def work() -> Submission | None:
            # The insert either creates the entry or waits for whoever holds it, so of two
            # claims at once exactly one inserts; the other reads the row locked, and decides.
            if self._db.run(
                "INSERT INTO submissions (key, fingerprint, mode, backend, idem_key, state, "
                "token_id, callback, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (
                    key,
                    fingerprint,
                    mode,
                    backend,
                    idem_key,
                    SUBMITTING,
                    token_id,
                    callback,
                    now,
                ),
            ):
                return None
            row = self._db.one(
                f"SELECT * FROM submissions WHERE key = ?{self._db.for_update}", (key,)
            )
            assert row is not None  # entries are never deleted
            if row["state"] == SUBMITTING and (row["idem_key"], row["created_at"]) == (
                idem_key,
                now,
            ):
                return None  # this very claim, committed as the connection was lost: run again
            if row["idem_key"] == idem_key:
                resendable = row["state"] == State.REFUSED or (
                    resend_ok and row["state"] == SUBMITTING and row["backend"] == backend
                )
                if not resendable:
                    return Submission(**row)
            again = int(row["idem_key"] != idem_key and row["state"] in PAID_AGAIN_BY_CHOICE)
            self._db.run(
                "UPDATE submissions SET backend = ?, idem_key = ?, state = ?, token_id = ?, "
                "callback = ?, paid_again = paid_again + ?, "
                "task_id = NULL, sub_task_id = NULL, svg_url = NULL, error = NULL, "
                "submitted_at = NULL, finished_at = NULL, quality = NULL WHERE key = ?",
                (backend, idem_key, SUBMITTING, token_id, callback, again, key),
            )
            return None

        return self._db.write(work)

    def submitted(self, key: str, task_id: str, sub_task_id: str | None, attempts: int) -> None:
        """The POST's answer named the task. A callback may have named it first (the answer
        came late): the task is then counted once."""
        self._db.write(
            lambda: self._db.run(
                "UPDATE submissions SET state = ?, task_id = ?, sub_task_id = ?, attempts = ?, "
                "submitted_at = ?, paid = paid + (CASE WHEN task_id IS NULL THEN 1 ELSE 0 END) "
                "WHERE key = ?",
                (SUBMITTED, task_id, sub_task_id, attempts, time.time(), key),
            )
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
            quality=None,  # a new SVG: the scores of the last one do not hold for it
            finished_at=time.time(),
        )

    def scored(self, key: str, quality: str, flags: str) -> None:
        """The fidelity scores (JSON, opaque here) and flags the pipeline found for the SVG."""
        self._update(key, quality=quality, flags=flags)

    def unconfirmed(self, key: str, error: str) -> None:
        """The POST left and its answer never came: a task may exist (and be billed). A
        callback that named the task already stands."""
        self._update(key, only_from=SUBMITTING, state=State.UNCONFIRMED, error=error)

    def not_created(self, key: str, error: str) -> None:
        """The POST was refused, or surely never reached the API: no task exists."""
        self._update(
            key, only_from=SUBMITTING, state=State.REFUSED, error=error, finished_at=time.time()
        )

    def called_back(
        self, token_hash: str, main_task_id: str, sub_task_results: str
    ) -> CallbackOutcome:
        """Record a task's callback (idempotent) and, when the POST's answer was lost, take the
        task id it names: the row is polled and downloaded, never paid for again."""

        def work() -> CallbackOutcome:
            row = self._db.one(
                f"SELECT key, state, task_id FROM submissions WHERE callback = ?"
                f"{self._db.for_update}",
                (token_hash,),
            )
            if row is None:
                return CallbackOutcome.UNKNOWN_TOKEN
            if row["task_id"] is not None and row["task_id"] != main_task_id:
                return CallbackOutcome.OTHER_TASK
            heard = self._db.one(
                "SELECT main_task_id FROM callbacks WHERE token_hash = ?", (token_hash,)
            )
            if heard is not None:
                if heard["main_task_id"] != main_task_id:
                    return CallbackOutcome.OTHER_TASK
                self._db.run(
                    "UPDATE callbacks SET repeats = repeats + 1 WHERE token_hash = ?",
                    (token_hash,),
                )
                return CallbackOutcome.REPEATED
            self._db.run(
                "INSERT INTO callbacks (token_hash, main_task_id, sub_task_results, received_at)"
                " VALUES (?, ?, ?, ?)",
                (token_hash, main_task_id, sub_task_results, time.time()),
            )
            self._apply_callbacks(" AND callback = ?", (token_hash,))
            return CallbackOutcome.RECORDED

        return self._db.write(work)

    def apply_callbacks(self) -> int:
        """Give every claim still waiting for its answer the task id its callback named: how a
        callback heard while no run was watching reaches the next run. Returns how many."""
        return self._db.write(lambda: self._apply_callbacks("", ()))

    def _apply_callbacks(self, where: str, params: tuple[str, ...]) -> int:
        heard = "SELECT {} FROM callbacks c WHERE c.token_hash = submissions.callback"
        return self._db.run(
            f"UPDATE submissions SET state = ?, task_id = ({heard.format('c.main_task_id')}), "
            "error = NULL, finished_at = NULL, paid = paid + 1, "
            "submitted_at = COALESCE(submitted_at, created_at) "
            f"WHERE task_id IS NULL AND state IN (?, ?, ?) AND EXISTS ({heard.format('1')})"
            f"{where}",
            (SUBMITTED, SUBMITTING, State.UNCONFIRMED, State.REFUSED, *params),
        )

    def finished(self, key: str, state: State, error: str | None = None) -> None:
        """A terminal outcome of a task without an SVG: failed, rejected or lost."""
        self._update(key, state=state, error=error, finished_at=time.time())

    def record_rows(self, entries: list[RowWrite]) -> None:
        """Rows whose SVG has just been written: (row_id, key, svg_path, svg_sha256, size,
        mtime_ns), the last two None where the store cannot tell them cheaply."""
        now = time.time()
        # In row order (stable: of two writes to one row the last still wins), so concurrent
        # writers lock rows in the same order and cannot deadlock.
        ordered = sorted(entries, key=lambda entry: entry[0])
        self._db.write(
            lambda: self._db.run_many(
                "INSERT INTO rows (row_id, key, svg_path, svg_sha256, svg_size, svg_mtime_ns, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (row_id) DO UPDATE SET "
                "key = excluded.key, svg_path = excluded.svg_path, "
                "svg_sha256 = excluded.svg_sha256, svg_size = excluded.svg_size, "
                "svg_mtime_ns = excluded.svg_mtime_ns, updated_at = excluded.updated_at",
                [(*padded(entry), now) for entry in ordered],
            )
        )

    def file_hashes(self, paths: list[str]) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, sha256) of local images hashed by earlier runs."""
        return {
            r["path"]: (r["size"], r["mtime_ns"], r["sha256"])
            for r in self._db.select_in("file_hashes", "path", paths)
        }

    def remember_file_hashes(self, entries: list[tuple[str, int, int, str]]) -> None:
        ordered = sorted(entries, key=lambda entry: entry[0])  # as in record_rows
        self._db.write(
            lambda: self._db.run_many(
                "INSERT INTO file_hashes (path, size, mtime_ns, sha256) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET size = excluded.size, "
                "mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256",
                ordered,
            )
        )

    def paid(self) -> dict[str, int]:
        """Tasks paid over every run (`paid`), of which by choice (`paid_again`), and claims
        that may have been billed (`unconfirmed`: answer lost, no callback yet)."""
        row = self._db.one(
            "SELECT COALESCE(SUM(paid), 0) AS paid, COALESCE(SUM(paid_again), 0) AS paid_again, "
            "COALESCE(SUM(CASE WHEN state = ? THEN 1 ELSE 0 END), 0) AS unconfirmed "
            "FROM submissions",
            (State.UNCONFIRMED,),
        )
        assert row is not None
        return {name: int(row[name]) for name in ("paid", "paid_again", "unconfirmed")}

    def record_run(self, run_id: str, out: str, started_at: float, figures: str) -> None:
        """A run's figures (JSON, opaque here), for `img2svg status` and the next run's ETA."""
        self._db.write(
            lambda: self._db.run(
                "INSERT INTO runs (run_id, out, started_at, ended_at, figures) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                "ended_at = excluded.ended_at, figures = excluded.figures",
                (run_id, out, started_at, time.time(), figures),
            )
        )

    def last_run(self, out: str) -> tuple[float, str] | None:
        """(ended_at, figures) of the last run recorded for this output."""
        row = self._db.one(
            "SELECT ended_at, figures FROM runs WHERE out = ? ORDER BY ended_at DESC LIMIT 1",
            (out,),
        )
        return (row["ended_at"], row["figures"]) if row else None

    def callbacks_since(self, when: float) -> int:
        row = self._db.one("SELECT COUNT(*) AS n FROM callbacks WHERE received_at > ?", (when,))
        return int(row["n"]) if row else 0

    def counts(self) -> dict[str, int]:
        found = self._db.all("SELECT state, COUNT(*) AS n FROM submissions GROUP BY state")
        return {r["state"]: r["n"] for r in found}

    def _update(self, key: str, *, only_from: State | None = None, **fields: Any) -> None:
        """Set `fields` of the key's entry; `only_from`: only while it is in that state (a
        verdict that must not undo what a callback already recorded)."""
        sets = ", ".join(f"{name} = ?" for name in fields)
        guard, params = (" AND state = ?", [only_from]) if only_from else ("", [])
        self._db.write(
            lambda: self._db.run(
                f"UPDATE submissions SET {sets} WHERE key = ?{guard}",
                [*fields.values(), key, *params],
            )
        )
