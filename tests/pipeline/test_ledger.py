"""The ledger: durable, transactional, readable after a crash at any point."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from img2svg.pipeline.ledger import SUBMITTED, SUBMITTING, Ledger, submission_key


def test_submission_lifecycle_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    key = submission_key("sha256:abc", "fast")
    ledger = Ledger(path)
    ledger.begin(key, fingerprint="sha256:abc", mode="fast", backend="http://api", idem_key="k1")
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
        ledger.begin(key, fingerprint=f"fp{i}", mode="fast", backend="u", idem_key=str(i))
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
