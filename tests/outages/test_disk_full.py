"""The disk of the outputs (and of the run's own files beside them) fills up mid-run.

A 1.5 MB tmpfs, mounted by the test (root only), holds --out: the SVGs, the ledger and the
run's workspace. The API is `img2svg serve --no-idempotency` (HiDream's billing), whose
own files live elsewhere.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from img2svg.svg.check import check_svg
from tests.helpers import metric
from tests.outages.catalog import catalog


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _convert(manifest: Path, out: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HIDREAM_"))}
    return subprocess.run(
        [sys.executable, "-m", "img2svg.cli", "convert", str(manifest), "--out", str(out),
         "--api-url", url, "--rate-limit", "0", "--no-score", "--max-failure-ratio", "1"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def _recorded_svgs_are_whole(out: Path) -> int:
    """Every row the ledger records as written has a complete SVG: how many there are."""
    with sqlite3.connect(out / ".img2svg" / "ledger.sqlite3") as db:
        paths = [row[0] for row in db.execute("SELECT svg_path FROM rows")]
    for path in paths:
        data = (out / path).read_bytes()
        assert data, path
        check_svg(data)  # parses, is an SVG
    return len(paths)


def test_a_full_disk_stops_the_run_with_one_message_and_the_rerun_pays_nothing_twice(
    tmp_path: Path, small_disk: Path, start_service
) -> None:
    service = start_service("--no-idempotency", "--workers", "2")
    manifest = catalog(tmp_path, 200, size=96)
    out = small_disk / "out"

    first = _convert(manifest, out, service.url)
    assert first.returncode == 2, first.stdout + first.stderr
    assert "Traceback" not in first.stdout + first.stderr
    assert "no space left on" in " ".join(first.stderr.split())
    written = _recorded_svgs_are_whole(out)
    with httpx.Client(base_url=service.url) as api:
        created = metric(api, "img2svg_tasks_created_total")
    assert 0 < created <= 200 and written < 200, "the disk must fill mid-run"

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # freed
    second = _convert(manifest, out, service.url)
    assert second.returncode == 0, second.stdout + second.stderr
    results = pd.read_parquet(out / "results.parquet")
    assert results["status"].value_counts().to_dict() == {"succeeded": 200}
    assert _recorded_svgs_are_whole(out) == 200 >= written
    with httpx.Client(base_url=service.url) as api:
        # What the first run paid for was downloaded again, not paid again.
        assert metric(api, "img2svg_tasks_created_total") == 200
