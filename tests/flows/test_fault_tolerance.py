"""Never lose a row: transient faults, a killed service, a killed pipeline, a revoked token.

The numbers are exact: rows in == rows out, and tasks created on the service == distinct images.
The chaos and kill tests run twice: against a service that dedupes Idempotency-Key, and with
`--no-idempotency`, HiDream's semantics, where every resent POST would be a second bill.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.convert import convert
from img2svg.service.embedded import EmbeddedService
from tests.helpers import image_manifest, metric


def _manifest(tmp_path: Path, rows: int, distinct: int) -> Path:
    """`rows` rows over `distinct` images (row i shows image i % distinct)."""
    return image_manifest(tmp_path, [i % distinct for i in range(rows)])


def _convert(manifest: Path, out: Path, url: str, **params) -> pd.DataFrame:
    params = {"rate_limit": 0, "id_column": "id", "max_failure_ratio": 1.0, **params}
    state = convert(manifest=str(manifest), out=str(out), api_url=url, return_state=True, **params)
    assert state.is_completed(), state.message  # a crashed run would leave old results behind
    return pd.read_parquet(out / "results.parquet")


def _created(url: str) -> int:
    with httpx.Client(base_url=url) as api:
        return int(metric(api, "img2svg_tasks_created_total"))


def _tasks_in_store(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "tasks.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]


def _most_tasks_for_one_image(data_dir: Path) -> int:
    """The service records each task's request body hash: the same image twice is billed twice."""
    with sqlite3.connect(data_dir / "tasks.sqlite3") as db:
        row = db.execute(
            "SELECT COUNT(*) FROM tasks GROUP BY body_hash ORDER BY 1 DESC LIMIT 1"
        ).fetchone()
    return row[0] if row else 0


MODES = pytest.mark.parametrize("deduped", [True, False], ids=["idempotent", "no-idempotency"])


def _when(condition: Callable[[], bool], action: Callable[[], None]) -> threading.Thread:
    """Run `action` once `condition` holds (checked every 50 ms, for at most 2 minutes)."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if condition():
                    action()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@MODES
def test_chaos_every_row_terminal_and_no_task_created_twice(
    start_service, tmp_path: Path, deduped: bool
):
    manifest = _manifest(tmp_path, rows=40, distinct=32)
    args = ["--fault-rate", "0.2", "--seed", "7", "--max-concurrency", "2"]
    chaotic = start_service(*args, *([] if deduped else ["--no-idempotency"]))
    results = _convert(manifest, tmp_path / "chaos", chaotic.url, chunk_size=8)

    assert len(results) == 40 and results["row_id"].is_unique
    with httpx.Client(base_url=chaotic.url) as api:
        assert metric(api, "img2svg_refusals_total", '{code="2003"}') > 0  # 429s were seen
        posts = metric(api, "img2svg_submit_requests_total")
    if deduped:
        assert posts > 32  # POSTs whose answers were lost were resent, free
        assert (results["status"] == "succeeded").sum() == 40
        assert _created(chaotic.url) == 32  # despite lost responses and retried POSTs
        return
    # Lost answers cannot be resent: those rows are unconfirmed, and nothing is billed twice.
    assert set(results["status"]) == {"succeeded", "unconfirmed"}
    assert _most_tasks_for_one_image(chaotic.data_dir) == 1
    succeeded_images = results.loc[results["status"] == "succeeded", "image"].nunique()
    assert succeeded_images <= _created(chaotic.url) <= 32


def test_service_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, rows=24, distinct=24)
    data_dir = tmp_path / "service"
    first = EmbeddedService(data_dir, extra_args=["--workers", "2", "--latency", "0.3"]).start()
    port = first.port
    replacement: list[EmbeddedService] = []

    def crash_and_restart() -> None:
        first.kill()  # SIGKILL: no graceful shutdown
        replacement.append(
            EmbeddedService(data_dir, port=port, extra_args=["--workers", "2"]).start()
        )

    watcher = _when(lambda: _created(first.url) >= 10, crash_and_restart)
    try:
        results = _convert(manifest, tmp_path / "out", first.url, rate_limit=120)
        watcher.join(timeout=5)
        assert replacement, "the service was never killed"
        assert len(results) == 24
        assert results["status"].tolist() == ["succeeded"] * 24
        assert _tasks_in_store(data_dir) == 24
        assert results["task_id"].nunique() == 24
    finally:
        first.kill()
        for service in replacement:
            service.stop()


@MODES
def test_pipeline_killed_half_way_then_rerun_pays_nothing_twice(
    start_service, tmp_path: Path, deduped: bool
) -> None:
    manifest = _manifest(tmp_path, rows=24, distinct=20)
    service = start_service("--latency", "0.2", *([] if deduped else ["--no-idempotency"]))
    out = tmp_path / "out"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_API") and key != "PREFECT_HOME"
    }
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    command = [
        sys.executable, "-m", "img2svg.cli", "convert", str(manifest),
        "--out", str(out), "--api-url", service.url, "--id-column", "id",
        "--rate-limit", "60", "--chunk-size", "5", "--max-failure-ratio", "0.5",
    ]  # fmt: skip

    first = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while _created(service.url) < 10:
            assert first.poll() is None, first.stdout.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)  # the whole process group, as a lost machine
        first.wait()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    created_before = _created(service.url)
    assert 10 <= created_before < 20
    assert not (out / "results.parquet").exists()

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 24 and results["row_id"].is_unique
    assert "succeeded" in rerun.stdout and "24" in rerun.stdout
    assert _most_tasks_for_one_image(service.data_dir) == 1  # no image billed twice
    if deduped:
        assert results["status"].tolist() == ["succeeded"] * 24
        assert _created(service.url) == 20  # no task of the first run was created again
        return
    # The POSTs in flight at the kill may have been billed: unconfirmed, never resent.
    assert set(results["status"]) <= {"succeeded", "unconfirmed"}
    unconfirmed = results.loc[results["status"] == "unconfirmed", "image"].nunique()
    assert 20 - unconfirmed <= _created(service.url) <= 20


def test_token_revoked_mid_run_stops_submitting(tmp_path: Path, monkeypatch) -> None:
    manifest = _manifest(tmp_path, rows=30, distinct=30)
    data_dir = tmp_path / "service"
    args = ["--workers", "2", "--latency", "0.3"]
    first = EmbeddedService(data_dir, extra_args=[*args, "--token", "old-token"]).start()
    replacement: list[EmbeddedService] = []

    def revoke() -> None:
        first.kill()
        replacement.append(
            EmbeddedService(
                data_dir, port=first.port, extra_args=[*args, "--token", "new-token"]
            ).start()
        )

    monkeypatch.setenv("HIDREAM_API_TOKEN", "old-token")
    watcher = _when(lambda: _created(first.url) >= 5, revoke)
    try:
        results = _convert(manifest, tmp_path / "out", first.url, rate_limit=120)
        watcher.join(timeout=5)
        assert replacement
        assert len(results) == 30 and results["row_id"].is_unique
        assert set(results["status"]) <= {"succeeded", "error"}
        refused = results[results["status"] == "error"]
        assert len(refused) > 0
        assert refused["error"].str.contains("set a valid HIDREAM_API_TOKEN").all()
        # After the first 401 the run sent no more submissions than were already in flight.
        with httpx.Client(base_url=replacement[0].url) as api:
            assert metric(api, "img2svg_tasks_created_total") == 0
            assert metric(api, "img2svg_submit_requests_total") <= 8  # --concurrency
        assert "old-token" not in results.to_csv()
    finally:
        first.kill()
        for service in replacement:
            service.stop()
