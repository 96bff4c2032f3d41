"""What every outage test starts from: a catalog of distinct images, and a run reaching the
fault's moment (enough tasks created on the service)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pandas as pd

from tests.helpers import logo_png, metric


def catalog(folder: Path, images: int, size: int = 48) -> Path:
    """A manifest of `images` distinct images (one task each), paths relative to it."""
    (folder / "imgs").mkdir()
    for i in range(images):
        (folder / "imgs" / f"{i}.png").write_bytes(logo_png(size, seed=i))
    manifest = folder / "m.csv"
    names = [f"imgs/{i}.png" for i in range(images)]
    pd.DataFrame({"image_url": names}).to_csv(manifest, index=False)
    return manifest


def wait_for_tasks(api: httpx.Client, tasks: int, run: subprocess.Popen[str]) -> None:
    """Until the service has created `tasks` tasks (the run still going)."""
    deadline = time.monotonic() + 240
    while metric(api, "img2svg_tasks_created_total") < tasks:
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "the run never reached the fault's moment"
        time.sleep(0.1)


def finished_whole(run: subprocess.Popen[str], out: Path, api: httpx.Client, images: int) -> None:
    """The run outlived the fault: exit 0, no traceback, every row succeeded, one task per
    image (none paid twice)."""
    output, _ = run.communicate(timeout=600)
    assert run.returncode == 0, output
    assert "Traceback" not in output
    results = pd.read_parquet(out / "results.parquet")
    assert results["status"].value_counts().to_dict() == {"succeeded": images}
    assert metric(api, "img2svg_tasks_created_total") == images
