"""`img2svg receive` alone, as a process on loopback: what it records, repeats, and refuses."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from img2svg.run.notify import callback_url, new_token, token_hash
from img2svg.stores.ledger import SUBMITTED, Ledger, State, submission_key
from tests.helpers import wait_for


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """(base URL, ledger path, log path) of a receiver process."""
    ledger, port_file, log = tmp_path / "ledger.sqlite3", tmp_path / "port", tmp_path / "log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "img2svg.cli", "receive", "--port", "0", "--port-file",
             str(port_file), "--ledger", str(ledger), "--max-body-bytes", "4096"],
            stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_for(lambda: port_file.exists() or process.poll() is not None, 30)
            assert process.poll() is None, log.read_text()
            yield f"http://127.0.0.1:{port_file.read_text().strip()}/hooks", ledger, log
        finally:
            process.terminate()
            process.wait(10)


def _claim(ledger: Ledger, name: str, token: str) -> str:
    key = submission_key(name, "fast")
    assert (
        ledger.claim(
            key,
            fingerprint=name,
            mode="fast",
            backend="api",
            idem_key=name,
            token_id=None,
            resend_ok=False,
            callback=token_hash(token),
        )
        is None
    )
    return key


def test_a_lost_answer_is_recovered_once_and_bad_callbacks_are_refused(receiver) -> None:
    base, location, log = receiver
    lost, answered = new_token(), new_token()
    with Ledger(location) as ledger:
        lost_key = _claim(ledger, "lost", lost)
        ledger.unconfirmed(lost_key, "answer lost")
        answered_key = _claim(ledger, "answered", answered)
        ledger.submitted(answered_key, "t-answered", "s", 1)
    body = {
        "main_task_id": "t-lost",
        "sub_task_results": [
            {
                "sub_task_id": "s1",
                "task_status": 1,
                "task_completion": 1,
                "image": "https://cdn/x.svg",
            }
        ],
    }
    with httpx.Client(timeout=10) as http:
        first = http.post(callback_url(base, lost), json=body)
        again = http.post(callback_url(base, lost), json=body)  # HiDream's retry
        forged = http.post(callback_url(base, new_token()), json=body)
        malformed = http.post(f"{base}/not-a-token", json=body)
        other = http.post(callback_url(base, answered), json={"main_task_id": "t-other"})
        moved = http.post(callback_url(base, lost), json={"main_task_id": "t-else"})
        huge = http.post(callback_url(base, lost), content=b"{" + b" " * 10_000 + b"}")
        not_json = http.post(callback_url(base, lost), content=b"{'main_task_id': 1,}")
        no_id = http.post(callback_url(base, lost), json={"sub_task_results": []})
        bad_list = http.post(
            callback_url(base, lost), json={"main_task_id": 1, "sub_task_results": "done"}
        )
        health = http.get(base.rsplit("/", 1)[0] + "/healthz")
    assert (first.status_code, first.json()["detail"]) == (200, "recorded")
    assert (again.status_code, again.json()["detail"]) == (200, "already recorded")
    assert [r.status_code for r in (forged, malformed)] == [404, 404]
    assert [r.status_code for r in (other, moved)] == [409, 409]
    assert huge.status_code == 413
    assert (not_json.status_code, no_id.status_code, bad_list.status_code) == (400, 422, 422)
    assert health.json() == {"ok": True}
    with Ledger(location) as ledger:
        found = ledger.submissions([lost_key, answered_key])
    assert (found[lost_key].state, found[lost_key].task_id, found[lost_key].paid) == (
        SUBMITTED,
        "t-lost",
        1,
    )
    assert found[answered_key].task_id == "t-answered"  # the forged id was not believed
    logged = log.read_text()
    assert lost not in logged and answered not in logged  # a token is a credential
    assert "recorded" in logged


def test_a_callback_for_a_claim_replaced_since_is_unknown(receiver) -> None:
    base, location, _ = receiver
    old, new = new_token(), new_token()
    with Ledger(location) as ledger:
        key = _claim(ledger, "img", old)
        ledger.unconfirmed(key, "answer lost")
        # --resubmit-unconfirmed: a new claim, a new token
        assert (
            ledger.claim(
                key,
                fingerprint="img",
                mode="fast",
                backend="api",
                idem_key="2",
                token_id=None,
                resend_ok=False,
                callback=token_hash(new),
            )
            is None
        )
    with httpx.Client(timeout=10) as http:
        stale = http.post(callback_url(base, old), json={"main_task_id": "t-old"})
        fresh = http.post(callback_url(base, new), json={"main_task_id": "t-new"})
    assert (stale.status_code, fresh.status_code) == (404, 200)
    with Ledger(location) as ledger:
        now = ledger.submission(key)
    assert (now.state, now.task_id, now.paid_again) == (State.SUBMITTED, "t-new", 1)


def test_receive_without_a_ledger_is_one_message(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "img2svg.cli", "receive", "--port", "0"],
        capture_output=True, text=True, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "img2svg receive: give --ledger (or --out, or set IMG2SVG_LEDGER_URL)"
    ]
