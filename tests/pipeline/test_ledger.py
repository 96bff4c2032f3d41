"""The ledger: durable, transactional, readable after a crash at any point."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from img2svg.pipeline.ledger import SUBMITTED, SUBMITTING, Ledger, submission_key


def test_submission_lifecycle_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    key = submission_key("http://api", "sha256:abc", "fast")
    ledger = Ledger(path)
    ledger.begin(key, api_url="http://api", fingerprint="sha256:abc", mode="fast", idem_key="k1")
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
    reopened.finished(key, "succeeded", svg_url="http://api/files/x.svg")
    reopened.record_row("r1", key, "succeeded", "/out/svgs/r1.svg", "f00")
    assert reopened.row("r1").svg_sha256 == "f00"
    assert reopened.counts() == {"succeeded": 1}


def _write_then_die(path: str) -> None:
    ledger = Ledger(Path(path))
    for i in range(10_000):
        key = submission_key("u", f"fp{i}", "fast")
        ledger.begin(key, api_url="u", fingerprint=f"fp{i}", mode="fast", idem_key=str(i))
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
