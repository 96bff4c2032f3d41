"""The ledger: durable, transactional, readable after a crash at any point, on both backends.

Tests taking `ledger_location` run once against a SQLite file and once against a fresh database
on a real PostgreSQL server (tests/pg.py); the migration tests of old SQLite files are SQLite's.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import psycopg
import pytest

from img2svg.stores.ledger import (
    SCHEMA_VERSION,
    SUBMITTED,
    SUBMITTING,
    CallbackOutcome,
    Ledger,
    LedgerTooNew,
    LedgerUnavailable,
    RunInProgress,
    State,
    describe,
    submission_key,
)

spawn = multiprocessing.get_context("spawn")


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


def test_submission_lifecycle_survives_reopen(ledger_location: Path | str) -> None:
    key = submission_key("sha256:abc", "fast")
    ledger = Ledger(ledger_location)
    assert _claim(ledger, key, "k1") is None
    assert ledger.submission(key).state == SUBMITTING
    ledger.submitted(key, "task-1", "sub-1", attempts=2)
    ledger.close()

    with Ledger(ledger_location) as reopened:
        sub = reopened.submission(key)
        assert (sub.state, sub.task_id, sub.sub_task_id, sub.attempts) == (
            SUBMITTED,
            "task-1",
            "sub-1",
            2,
        )
        reopened.succeeded(key, svg_url="http://api/x.svg", svg_path="/o/x.svg", svg_sha256="f")
        reopened.record_rows([("r1", key, "/out/svgs/r1.svg", "f00")])
        reopened.record_rows([("r2", key, "/out/svgs/r2.svg", "f01", 12, 1_700_000_000 * 10**9)])
        assert reopened.row("r1").svg_sha256 == "f00"
        assert reopened.row("r2").svg_mtime_ns == 1_700_000_000 * 10**9
        assert reopened.rows(["r1", "r3"]).keys() == {"r1"}
        assert {r.row_id for r in reopened.rows_of(key)} == {"r1", "r2"}
        assert reopened.submissions([key, "nope"])[key].svg_path == "/o/x.svg"
        assert reopened.counts() == {"succeeded": 1}
        reopened.remember_file_hashes([("/img/a.png", 10, 2**62, "sha")])
        assert reopened.file_hashes(["/img/a.png", "/img/b.png"]) == {
            "/img/a.png": (10, 2**62, "sha")
        }


def test_scored_records_quality_and_flags(ledger_location: Path | str) -> None:
    with Ledger(ledger_location) as ledger:
        key = submission_key("fp", "fast")
        _claim(ledger, key, "k1")
        ledger.succeeded(key, svg_url="u", svg_path="/o/x.svg", svg_sha256="f")
        assert ledger.submission(key).quality is None
        ledger.scored(key, '{"ssim": 0.93}', "sanitized")
        sub = ledger.submission(key)
        assert (sub.state, sub.quality, sub.flags) == (
            State.SUCCEEDED,
            '{"ssim": 0.93}',
            "sanitized",
        )


def test_many_keys_are_looked_up_at_once(ledger_location: Path | str) -> None:
    with Ledger(ledger_location) as ledger:
        ledger.record_rows([(f"r{i}", "k", f"/o/{i}.svg", "h") for i in range(1200)])
        ids = [f"r{i}" for i in range(0, 1300, 1)]
        assert len(ledger.rows(ids)) == 1200  # more than one SQLite chunk of 500
        assert ledger.rows([]) == {} and ledger.submissions([]) == {}


def _write_then_die(location: Path | str) -> None:
    ledger = Ledger(location)
    for i in range(10_000):
        key = submission_key(f"fp{i}", "fast")
        _claim(ledger, key, str(i))
        ledger.submitted(key, f"t{i}", None, 1)


def _counts(location: Path | str) -> dict[str, int]:
    with Ledger(location) as ledger:
        return ledger.counts()


def test_killed_writer_leaves_a_readable_ledger(ledger_location: Path | str) -> None:
    Ledger(ledger_location).close()
    process = spawn.Process(target=_write_then_die, args=(ledger_location,))
    process.start()
    # Let it write for a moment, then SIGKILL it mid-stream.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _counts(ledger_location).get(SUBMITTED, 0) <= 200:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    counts = _counts(ledger_location)
    assert counts.get(SUBMITTED, 0) > 200
    # Every record is whole: at most the one in flight is still 'submitting'.
    assert counts.get(SUBMITTING, 0) <= 1


def test_a_key_goes_on_the_wire_once_unless_nothing_was_created(
    ledger_location: Path | str,
) -> None:
    with Ledger(ledger_location) as ledger:
        key = submission_key("fp", "fast")
        assert _claim(ledger, key, "k1") is None
        taken = _claim(ledger, key, "k1")  # a retried batch, another run, another shard
        assert taken is not None and taken.state == SUBMITTING
        assert _claim(ledger, key, "k1", resend_ok=True) is None  # the API dedupes the key
        assert _claim(ledger, key, "k1", resend_ok=True, backend="v") is not None  # not there
        ledger.unconfirmed(key, "answer lost")
        assert _claim(ledger, key, "k1", resend_ok=True).state == State.UNCONFIRMED
        assert _claim(ledger, key, "k2") is None  # a new key is a deliberate new task
        ledger.not_created(key, "connection refused")
        assert _claim(ledger, key, "k2") is None  # nothing was created with it: free to send
        ledger.submitted(key, "t1", None, 1)
        assert _claim(ledger, key, "k2", resend_ok=True).task_id == "t1"


def test_a_callback_recovers_a_lost_answer_and_is_counted_once(
    ledger_location: Path | str,
) -> None:
    with Ledger(ledger_location) as ledger:
        lost, answered, late = (submission_key(f"fp{i}", "fast") for i in range(3))
        for key, token in ((lost, "h-lost"), (answered, "h-ok"), (late, "h-late")):
            assert ledger.claim(key, fingerprint=key, mode="fast", backend="u", idem_key=key,
                                token_id=None, resend_ok=False, callback=token) is None  # fmt: skip
        ledger.unconfirmed(lost, "answer lost")
        ledger.submitted(answered, "t-ok", "s", 1)
        results = '[{"task_status": 1}]'
        assert ledger.called_back("h-lost", "t-lost", results) == CallbackOutcome.RECORDED
        assert ledger.called_back("h-lost", "t-lost", results) == CallbackOutcome.REPEATED
        assert ledger.called_back("h-lost", "t-other", results) == CallbackOutcome.OTHER_TASK
        assert ledger.called_back("h-ok", "t-forged", results) == CallbackOutcome.OTHER_TASK
        assert ledger.called_back("h-ok", "t-ok", results) == CallbackOutcome.RECORDED
        assert ledger.called_back("nobody", "t-ok", results) == CallbackOutcome.UNKNOWN_TOKEN
        # The callback came before the POST's answer: the answer names the same task, once.
        assert ledger.called_back("h-late", "t-late", results) == CallbackOutcome.RECORDED
        ledger.unconfirmed(late, "answer lost")  # a late verdict does not undo the callback
        ledger.submitted(late, "t-late", "s", 1)
        found = ledger.submissions([lost, answered, late])
        assert {k: (v.state, v.task_id, v.paid) for k, v in found.items()} == {
            lost: (SUBMITTED, "t-lost", 1),
            answered: (SUBMITTED, "t-ok", 1),
            late: (SUBMITTED, "t-late", 1),
        }
        assert ledger.apply_callbacks() == 0  # all applied as they came


def test_resubmitting_by_choice_is_counted(ledger_location: Path | str) -> None:
    with Ledger(ledger_location) as ledger:
        done, failed = submission_key("a", "fast"), submission_key("b", "fast")
        for key in (done, failed):
            assert _claim(ledger, key, "k1") is None
            ledger.submitted(key, f"t-{key}", None, 1)
        ledger.succeeded(done, svg_url="u", svg_path="p", svg_sha256="h")
        ledger.finished(failed, State.FAILED, "status 3")
        assert _claim(ledger, done, "k2") is None  # --force
        assert _claim(ledger, failed, "k2") is None  # a failed task is tried again by any run
        for key in (done, failed):
            ledger.submitted(key, f"t2-{key}", None, 1)
        found = ledger.submissions([done, failed])
        assert (found[done].paid, found[done].paid_again) == (2, 1)
        assert (found[failed].paid, found[failed].paid_again) == (2, 0)


def _race(location: Path | str, keys: list[str], barrier, results) -> None:
    with Ledger(location) as ledger:
        for key in keys:
            barrier.wait(timeout=60)
            results.put((key, _claim(ledger, key, "k1") is None))


def test_processes_claiming_a_key_at_once_send_it_once(ledger_location: Path | str) -> None:
    Ledger(ledger_location).close()  # created (and migrated) before the race
    keys = [submission_key(f"fp{i}", "fast") for i in range(8)]
    barrier, results = spawn.Barrier(6), spawn.Queue()
    workers = [
        spawn.Process(target=_race, args=(ledger_location, keys, barrier, results))
        for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in range(6 * len(keys))]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    for key in keys:
        assert sorted(sent for k, sent in outcomes if k == key) == [False] * 5 + [True]
    assert _counts(ledger_location) == {SUBMITTING: len(keys)}


def _hold(location: Path | str, name: str, held) -> None:
    with Ledger(location) as ledger, ledger.lock(name, wait=False, what="busy"):
        held.set()
        time.sleep(600)


def test_a_lock_is_refused_while_held_and_freed_when_its_holder_is_killed(
    ledger_location: Path | str,
) -> None:
    with Ledger(ledger_location) as ledger:
        with ledger.lock("stage", wait=False, what="x"), Ledger(ledger_location) as other:
            busy = f"stage busy \\(pid {os.getpid()}\\b"
            refusal = "stage busy ({holder})"
            with (
                pytest.raises(RunInProgress, match=busy) as refused,
                other.lock("stage", wait=False, what=refusal),
            ):
                pass
            assert str(os.getpid()) in refused.value.holder
            with ledger.lock("another name", wait=False, what="x"):
                pass
        with ledger.lock("stage", wait=False, what="x"):  # released at the end of the block
            pass

        held = spawn.Event()
        holder = spawn.Process(target=_hold, args=(ledger_location, "stage", held))
        holder.start()
        assert held.wait(60)
        with (
            pytest.raises(RunInProgress, match="busy"),
            ledger.lock("stage", wait=False, what="busy"),
        ):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.join()
        deadline = time.monotonic() + 15
        while True:
            try:
                with ledger.lock("stage", wait=False, what="still held"):
                    break
            except RunInProgress:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def test_a_waiting_lock_is_taken_when_released(ledger_location: Path | str) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Ledger(ledger_location) as ledger, ledger.lock("stage", wait=False, what="x"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    threading.Timer(0.8, release.set).start()
    started = time.monotonic()
    with Ledger(ledger_location) as ledger, ledger.lock("stage", wait=True, what="x"):
        assert release.is_set()
    assert time.monotonic() - started >= 0.7
    holder.join()


def test_one_run_per_output(ledger_location: Path | str) -> None:
    out = "/data/out{1}"  # braces are no format fields
    with Ledger(ledger_location) as ledger, ledger.run_lock(out):
        message = rf"another img2svg run \(pid {os.getpid()}\b.*\) is writing to /data/out\{{1\}}"
        with pytest.raises(RunInProgress, match=message), Ledger(ledger_location) as second:
            second.run_lock(out).__enter__()
        with Ledger(ledger_location) as other, other.run_lock("/data/elsewhere"):
            pass
    with Ledger(ledger_location) as again, again.run_lock(out):
        pass


def test_a_sqlite_run_lock_is_a_file_beside_the_ledger(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger, ledger.run_lock("/out"):
        (lock,) = (tmp_path / "locks").iterdir()
        assert lock.suffix == ".lock" and lock.read_text() == str(os.getpid())


def _make_newer(location: Path | str) -> None:
    if isinstance(location, Path):
        with sqlite3.connect(location) as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    else:
        with psycopg.connect(location, autocommit=True) as db:
            db.execute("UPDATE img2svg.meta SET value = %s", (str(SCHEMA_VERSION + 1),))


def test_a_ledger_from_a_newer_img2svg_is_refused(ledger_location: Path | str) -> None:
    Ledger(ledger_location).close()
    _make_newer(ledger_location)
    with pytest.raises(LedgerTooNew, match=rf"newer img2svg \(schema {SCHEMA_VERSION + 1}\)"):
        Ledger(ledger_location)


def test_postgres_tables_live_in_their_own_schema(postgres_url: str) -> None:
    Ledger(postgres_url).close()
    Ledger(postgres_url).close()  # a second open finds the current version and leaves it be
    with psycopg.connect(postgres_url) as db:
        tables = db.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        version = db.execute("SELECT value FROM img2svg.meta").fetchall()
    assert {schema for schema, _ in tables} == {"img2svg"}
    assert {name for _, name in tables} == {
        "submissions", "rows", "file_hashes", "meta", "locks", "callbacks", "runs"
    }  # fmt: skip
    assert version == [(str(SCHEMA_VERSION),)]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SECRET = "s3cr3t-Pw"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://img2svg:{SECRET}@127.0.0.1:{{port}}/ledger",
        f"postgres://img2svg:{SECRET}%40x@127.0.0.1:{{port}}/ledger?sslmode=disable",
        f"postgresql://img2svg@127.0.0.1:{{port}}/ledger?password={SECRET}&connect_timeout=3",
    ],
)
def test_a_password_is_never_shown(url: str) -> None:
    url = url.replace("{port}", str(_closed_port()))
    assert SECRET not in describe(url) and "***" in describe(url)
    assert "127.0.0.1" in describe(url)
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger(url)
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert SECRET not in shown
    assert "127.0.0.1" in str(caught.value) and "refused" in str(caught.value).lower()
    assert caught.value.__cause__ is None and caught.value.__context__ is None


def test_a_password_is_not_shown_by_an_open_ledger(postgres_server) -> None:
    url = postgres_server.create_database("with_password").replace(
        "postgres@", f"postgres:{SECRET}@"
    )  # the test server trusts every local connection: the password is carried, not checked
    with Ledger(url) as ledger:
        assert SECRET not in repr(ledger) and "***" in repr(ledger)
        _make_newer(url)
    with pytest.raises(LedgerTooNew) as caught:
        Ledger(url)
    assert SECRET not in str(caught.value)


def test_a_sqlite_ledger_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(LedgerUnavailable, match="cannot open the ledger"):
        Ledger(tmp_path / "file" / "ledger.sqlite3")


def test_an_unknown_location_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unsupported ledger location s3://u:\*\*\*@bucket"):
        Ledger(f"s3://u:{SECRET}@bucket/ledger")


def test_the_ledger_imports_without_prefect_or_psycopg(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from img2svg.stores.ledger import Ledger\n"
        f"Ledger(Path({str(tmp_path / 'l.sqlite3')!r})).close()\n"
        "assert not [m for m in sys.modules if m.startswith(('prefect', 'psycopg'))]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


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
        assert (past.state, past.task_id, past.token_id, past.quality, past.paid) == (
            SUBMITTED,
            "t1",
            None,
            None,
            1,  # its task id was one billed task
        )
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_version_4_ledger_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with sqlite3.connect(path) as db:  # schema 4, as the release before quality wrote it
        db.executescript(
            """
            CREATE TABLE submissions (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL,
                mode TEXT NOT NULL, backend TEXT NOT NULL, idem_key TEXT NOT NULL,
                state TEXT NOT NULL, task_id TEXT, sub_task_id TEXT, svg_url TEXT,
                svg_path TEXT, svg_sha256 TEXT, error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0, token_id TEXT,
                flags TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
                submitted_at REAL, finished_at REAL);
            CREATE TABLE rows (row_id TEXT PRIMARY KEY, key TEXT NOT NULL,
                svg_path TEXT NOT NULL, svg_sha256 TEXT NOT NULL, updated_at REAL NOT NULL,
                svg_size INTEGER, svg_mtime_ns INTEGER);
            CREATE INDEX rows_key ON rows (key);
            CREATE TABLE file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL,
                mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL);
            INSERT INTO submissions (key, fingerprint, mode, backend, idem_key, state,
                svg_path, svg_sha256, flags, created_at)
                VALUES ('k', 'fp', 'fast', 'u', 'i', 'succeeded', '/o/k.svg', 'h', 'sanitized', 0);
            INSERT INTO rows VALUES ('r1', 'k', '/o/k.svg', 'h', 0, 12, 34);
            PRAGMA user_version = 4;
            """
        )
    with Ledger(path) as ledger:
        past = ledger.submission("k")
        assert (past.state, past.flags, past.quality) == (State.SUCCEEDED, "sanitized", None)
        assert ledger.row("r1").svg_mtime_ns == 34
        ledger.scored("k", '{"ssim": 0.9}', "sanitized,low-fidelity")
    with Ledger(path) as ledger:
        assert ledger.submission("k").quality == '{"ssim": 0.9}'
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        columns = [row[1] for row in db.execute("PRAGMA table_info(submissions)")]
        assert columns[-4:] == ["quality", "callback", "paid", "paid_again"]


def test_a_restarted_postgres_is_reconnected_and_a_held_lock_stays_held(
    postgres_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 0.2 s restart cuts every connection: reads, writes and claims go on after it, and the
    run lock's holder takes its lock back before a second run can."""
    monkeypatch.setenv("IMG2SVG_LEDGER_OUTAGE_S", "30")
    url = postgres_server.create_database(f"restart_{os.getpid()}")
    with Ledger(url) as ledger, ledger.run_lock("out"):
        key = submission_key("a", "fast")
        assert _claim(ledger, key, "k1") is None
        postgres_server.restart()
        ledger.submitted(key, "t1", None, 1)  # a write on a cut connection
        postgres_server.restart()
        assert ledger.submission(key).task_id == "t1"  # a read on a cut connection
        assert _claim(ledger, submission_key("b", "fast"), "k1") is None
        postgres_server.restart()
        time.sleep(3)  # the lock's keeper notices and takes it back
        with Ledger(url) as second, pytest.raises(RunInProgress), second.run_lock("out"):
            pass
    with Ledger(url) as second, second.run_lock("out"):  # let go: free at once
        assert second.submission(key).paid == 1


def test_a_ledger_down_past_the_bound_is_one_clear_error(
    postgres_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMG2SVG_LEDGER_OUTAGE_S", "2")
    url = postgres_server.create_database(f"down_{os.getpid()}")
    with Ledger(url) as ledger:
        postgres_server.stop()
        try:
            with pytest.raises(LedgerUnavailable, match="unreachable for 2 s") as raised:
                ledger.counts()
        finally:
            postgres_server.start()
        assert "IMG2SVG_LEDGER_OUTAGE_S" in str(raised.value)
        assert ledger.counts() == {}  # back: the next call reconnects
