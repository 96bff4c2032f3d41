"""`img2svg status` before and between runs: its figures equal a count of results.parquet and
the service's own count of tasks created (/metrics)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd

from flows.convert import convert
from tests.helpers import logo_png, metric


def _manifest(tmp_path: Path) -> Path:
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(24):
        (images / f"{i}.png").write_bytes(logo_png(32 + i % 8, seed=i))
    names = [f"imgs/{i}.png" for i in range(24)] + [f"imgs/{i}.png" for i in range(4)]
    names += ["imgs/missing-a.png", "imgs/missing-b.png"]  # 30 rows, 24 images
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image_url": names}).to_csv(manifest, index=False)
    return manifest


def _status(manifest: Path, out: Path, *extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "img2svg.cli", "status", str(manifest), "--out", str(out),
         "--json", *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout)


def _counted(out: Path) -> dict[str, int]:
    return pd.read_parquet(out / "results.parquet")["status"].value_counts().to_dict()


def test_status_counts_rows_tasks_and_time_left(start_service, tmp_path: Path) -> None:
    service = start_service()
    manifest, out = _manifest(tmp_path), tmp_path / "out"
    before = _status(manifest, out)
    assert (before["rows"], before["by_status"], before["tasks_paid"]) == (30, {"pending": 30}, 0)
    assert before["eta_seconds"] is None and before["rows_left"] == 30

    run = {"manifest": str(manifest), "out": str(out), "api_url": service.url, "rate_limit": 0,
           "max_failure_ratio": 1.0, "score": False}  # fmt: skip
    state = convert(**run, limit=10, return_state=True)
    assert "The catalog across runs" in state.result().catalog
    middle = _status(manifest, out, "--rate-limit", "20")
    counted = _counted(out)
    assert middle["by_status"] == counted and counted["skipped"] > 0
    with httpx.Client(base_url=service.url) as api:
        assert middle["tasks_paid"] == metric(api, "img2svg_tasks_created_total") == 10
    assert middle["tasks_paid_last_run"] == 10
    left = sum(n for s, n in counted.items() if s not in ("succeeded", "invalid", "rejected"))
    assert middle["rows_left"] == left
    assert middle["tasks_left"] == 14  # 24 images, 10 done
    assert middle["eta_seconds"] == 14 / (20 / 60)  # at 20 submissions a minute
    assert _status(manifest, out)["eta_seconds"] > 0  # at the pace the run measured

    convert(**run, return_state=True)
    after = _status(manifest, out)
    assert after["by_status"] == _counted(out) == {"succeeded": 28, "invalid": 2}
    with httpx.Client(base_url=service.url) as api:
        assert after["tasks_paid"] == metric(api, "img2svg_tasks_created_total") == 24
    assert (after["tasks_paid_last_run"], after["rows_left"], after["eta_seconds"]) == (14, 0, 0)
    assert after["paid_again_by_choice"] == 0
