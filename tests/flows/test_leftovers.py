"""Nothing left behind: the workspace and half-written SVG of a killed run are removed by the
next run, or by `img2svg gc`; a live run's never are."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from flows.convert import convert
from img2svg.stores.leftovers import workspace_lease
from tests.helpers import image_manifest


def _leave_a_killed_run(out: Path) -> tuple[list[Path], Path]:
    """What a SIGKILLed run leaves: its workspace (with WAL and SHM, its lease file released)
    and a temporary SVG from an interrupted write, both older than the sweeps' grace."""
    runs = out / ".img2svg" / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    dead = runs / "0f0e0d0c-dead-run.sqlite3"
    files = [dead, Path(f"{dead}-wal"), Path(f"{dead}-shm"), Path(f"{dead}.lock")]
    for path in files:
        path.write_bytes(b"x" * 1000)
    (out / "svgs").mkdir(parents=True, exist_ok=True)
    temporary = out / "svgs" / ".r000037.svg.1a2b3c4d.tmp"
    temporary.write_bytes(b"<svg")
    old = time.time() - 600
    for path in [*files, temporary]:
        os.utime(path, (old, old))
    return files, temporary


def test_the_next_run_removes_a_killed_runs_leftovers_but_not_a_live_ones(
    start_service, tmp_path: Path
) -> None:
    service = start_service()
    out = tmp_path / "out"
    dead, temporary = _leave_a_killed_run(out)
    live = out / ".img2svg" / "runs" / "live-run.sqlite3"
    with workspace_lease(live):  # another run, still going, on the same ledger
        live.write_bytes(b"live")
        os.utime(live, (time.time() - 7200, time.time() - 7200))
        state = convert(
            manifest=str(image_manifest(tmp_path, [1, 2])),
            out=str(out),
            api_url=service.url,
            rate_limit=0,
            return_state=True,
        )
        assert state.is_completed()
        assert live.exists()
    assert not any(path.exists() for path in dead) and not temporary.exists()
    assert pd.read_parquet(out / "results.parquet")["status"].eq("succeeded").all()
    assert sorted(p.name for p in (out / ".img2svg" / "runs").iterdir()) == ["live-run.sqlite3"]


def test_gc_removes_leftovers_and_says_what_it_freed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    dead, temporary = _leave_a_killed_run(out)
    done = subprocess.run(
        [sys.executable, "-m", "img2svg.cli", "gc", "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "removed 1 workspaces and 1 temporary files" in done.stdout
    assert not any(path.exists() for path in dead) and not temporary.exists()
