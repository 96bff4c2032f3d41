"""The ledger: durable, transactional, readable after a crash at any point."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

from img2svg.pipeline.ledger import (
    SCHEMA_VERSION,
    SUBMITTED,
    SUBMITTING,
    Ledger,
    State,
    submission_key,
)


def _claim(ledger: Ledger, key: str, idem_key: str, *, resend_ok: bool = False, backend="u"):
    return ledger.claim(
        key,
        fingerprint="fp",
        mode="fast",
        backend=backend,
        idem_key=idem_key,
        token_id="sha256:t",
        resend_ok=resend_ok,
    )


def test_submission_lifecycle_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    key = submission_key("sha256:abc", "fast")
    ledger = Ledger(path)
    assert _claim(ledger, key, "k1") is None
    assert ledger.submission(key).state == SUBMITTING
    ledger.submitted(key, "task-1", "sub-1", attempts=2)
    ledger.close()

    reopened = Ledger(path)
    sub = reopened.submission(key)
    assert (sub.state, sub.task_id, sub.sub_task_id, sub.attempts) == (
        SUBMITTED,
        "task-1",
        "sub-1",
        2,
    )
    reopened.succeeded(key, svg_url="http://api/files/x.svg", svg_path="/o/x.svg", svg_sha256="f")
    reopened.record_rows([("r1", key, "/out/svgs/r1.svg", "f00")])
    assert reopened.row("r1").svg_sha256 == "f00"
    assert reopened.rows(["r1", "r2"]).keys() == {"r1"}
    assert reopened.submissions([key, "nope"])[key].svg_path == "/o/x.svg"
    assert reopened.counts() == {"succeeded": 1}


def _write_then_die(path: str) -> None:
    ledger = Ledger(Path(path))
    for i in range(10_000):
        key = submission_key(f"fp{i}", "fast")
        _claim(ledger, key, str(i))
        ledger.submitted(key, f"t{i}", None, 1)


def test_killed_writer_leaves_a_readable_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    process = multiprocessing.get_context("spawn").Process(
        target=_write_then_die, args=(str(path),)
    )
    process.start()
    # Let it write for a moment, then SIGKILL it mid-stream.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        counts = Ledger(path).counts()
        if counts.get(SUBMITTED, 0) > 200:
            break
        time.sleep(0.05)
    os.kill(process.pid, 9)
    process.join()
    counts = Ledger(path).counts()
    assert counts.get(SUBMITTED, 0) > 200
    # Every record is whole: at most the one in flight is still 'submitting'.
    assert counts.get(SUBMITTING, 0) <= 1


def test_a_key_goes_on_the_wire_once_unless_nothing_was_created(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        key = submission_key("fp", "fast")
        assert _claim(ledger, key, "k1") is None
        taken = _claim(ledger, key, "k1")  # a retried batch, another run, another shard
        assert taken is not None and taken.state == SUBMITTING
        assert _claim(ledger, key, "k1", resend_ok=True) is None  # the API dedupes the key
        ledger.unconfirmed(key, "answer lost")
        assert _claim(ledger, key, "k1", resend_ok=True).state == State.UNCONFIRMED
        assert _claim(ledger, key, "k2") is None  # a new key is a deliberate new task
        ledger.not_created(key, "connection refused")
        assert _claim(ledger, key, "k2") is None  # nothing was created with it: free to send
        ledger.submitted(key, "t1", None, 1)
        assert _claim(ledger, key, "k2", resend_ok=True).task_id == "t1"


def test_a_version_1_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:  # the schema of the first release, with one entry
        db.executescript(
            """
            CREATE TABLE submissions (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
                mode TEXT NOT NULL, backend TEXT NOT NULL, idem_key TEXT NOT NULL,
                state TEXT NOT NULL, task_id TEXT, sub_task_id TEXT, svg_url TEXT,
                svg_path TEXT, svg_sha256 TEXT, error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL,
                submitted_at REAL, finished_at REAL);
            INSERT INTO submissions (key, fingerprint, mode, backend, idem_key, state, task_id,
                created_at) VALUES ('k', 'fp', 'fast', 'u', 'i', 'submitted', 't1', 0);
            """
        )
    with Ledger(path) as ledger:
        past = ledger.submission("k")
        assert (past.state, past.task_id, past.token_id) == (SUBMITTED, "t1", None)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
