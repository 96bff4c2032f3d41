"""The flow against a separately started service with faults: every status is produced."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flows.convert import convert
from tests.helpers import logo_png, metric


def _manifest(tmp_path: Path, n: int) -> Path:
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(n):
        (images / f"{i}.png").write_bytes(logo_png(32 + i % 8, seed=i))
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image_url": [f"imgs/{i}.png" for i in range(n)]}).to_csv(manifest, index=False)
    return manifest


def _convert(manifest: Path, out: Path, url: str, **params) -> pd.DataFrame:
    params = {"rate_limit": 0, "max_failure_ratio": 1.0, **params}
    state = convert(manifest=str(manifest), out=str(out), api_url=url, return_state=True, **params)
    assert state.is_completed(), state.message  # a crashed run would leave old results behind
    return pd.read_parquet(out / "results.parquet")


def test_failed_and_rejected_tasks(start_service, tmp_path: Path) -> None:
    service = start_service("--fail-rate", "0.3", "--reject-rate", "0.3", "--seed", "11")
    results = _convert(_manifest(tmp_path, 20), tmp_path / "out", service.url, chunk_size=7)
    counts = results["status"].value_counts().to_dict()
    assert set(counts) == {"succeeded", "failed", "rejected"}
    assert sum(counts.values()) == 20
    assert results.loc[results["status"] == "failed", "error"].str.contains("failed").all()
    assert results.loc[results["status"] == "rejected", "error"].str.contains("moderation").all()


def test_transient_faults_and_429s_are_survived(start_service, tmp_path: Path) -> None:
    service = start_service("--fault-rate", "0.2", "--seed", "5", "--max-concurrency", "3")
    results = _convert(_manifest(tmp_path, 16), tmp_path / "out", service.url, chunk_size=4)
    assert results["status"].tolist() == ["succeeded"] * 16
    import httpx

    with httpx.Client(base_url=service.url) as api:
        assert metric(api, "img2svg_tasks_created_total") == 16
        assert metric(api, "img2svg_refusals_total", '{code="2003"}') > 0


def test_slow_tasks_time_out(start_service, tmp_path: Path) -> None:
    service = start_service("--latency", "5")
    results = _convert(_manifest(tmp_path, 2), tmp_path / "out", service.url, poll_timeout=1)
    assert results["status"].tolist() == ["timed_out", "timed_out"]
    assert results["error"].str.contains("not finished after 1 s").all()
