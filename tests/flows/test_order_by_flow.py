"""--order-by with --limit, in real flow runs against the local service: the first rows in that
order are submitted, duplicates follow their first row, results stay in manifest order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd

from flows.convert import convert
from tests.helpers import logo_png, metric

# r4 shows r1's image; r0's value is missing; r3 and r5 tie.
ROWS = [(0, ""), (1, 9), (2, 1), (3, 5), (1, 2), (4, 5)]


def _catalog(folder: Path) -> Path:
    (folder / "images").mkdir()
    for seed, _ in ROWS:
        (folder / "images" / f"{seed}.png").write_bytes(logo_png(40, seed=seed))
    manifest = folder / "m.csv"
    lines = [f"r{i},images/{seed}.png,{prio}\n" for i, (seed, prio) in enumerate(ROWS)]
    manifest.write_text("id,image_url,prio\n" + "".join(lines))
    return manifest


def _run(manifest: Path, out: Path, url: str, **params):
    params = {"rate_limit": 0, "id_column": "id", "chunk_size": 2, "order_by": "prio", **params}
    return convert(manifest=str(manifest), out=str(out), api_url=url, return_state=True, **params)


def _created(url: str) -> int:
    with httpx.Client(base_url=url) as api:
        return int(metric(api, "img2svg_tasks_created_total"))


def _statuses(out: Path) -> dict[str, str]:
    results = pd.read_parquet(out / "results.parquet")
    assert results["row_id"].tolist() == [f"r{i}" for i in range(len(ROWS))]  # manifest order
    return dict(zip(results["row_id"], results["status"], strict=True))


def test_the_limit_takes_the_first_rows_in_the_requested_order(
    start_service, tmp_path: Path
) -> None:
    service = start_service()
    manifest = _catalog(tmp_path)
    out = tmp_path / "up"

    # Ascending: r2 (1), r4 (2, with r1: the same image), r3 (5), r5 (5), r1 (9), r0 (missing).
    plan = _run(manifest, out, service.url, limit=3, dry_run=True).result()
    assert (plan["tasks_to_submit"], plan["rows_to_submit"], plan["rows_skipped"]) == (3, 4, 2)
    assert _run(manifest, out, service.url, limit=3).is_completed()
    assert _created(service.url) == 3
    assert _statuses(out) == {
        "r0": "skipped",
        "r1": "succeeded",
        "r2": "succeeded",
        "r3": "succeeded",
        "r4": "succeeded",
        "r5": "skipped",  # ties keep the manifest's order: r3 first
    }
    results = pd.read_parquet(out / "results.parquet").set_index("row_id")
    # r1 leads its image (first in the manifest) though r4 came first in the order.
    assert not results.loc["r1", "reused"] and results.loc["r4", "reused"]
    assert results.loc["r4", "task_id"] == results.loc["r1", "task_id"]
    assert (out / "svgs" / "r4.svg").read_bytes() == (out / "svgs" / "r1.svg").read_bytes()


def test_descending_puts_missing_values_last_too(start_service, tmp_path: Path) -> None:
    service = start_service()
    manifest = _catalog(tmp_path)
    out = tmp_path / "down"

    # Descending: r1 (9, with r4), r3 (5), r5 (5), r4 (2), r2 (1), r0 (missing).
    assert _run(manifest, out, service.url, limit=2, descending=True).is_completed()
    assert _created(service.url) == 2
    assert _statuses(out) == {
        "r0": "skipped",
        "r1": "succeeded",
        "r2": "skipped",
        "r3": "succeeded",
        "r4": "succeeded",
        "r5": "skipped",
    }
    # The next run continues in the same order: r5, r2; r0's missing value is still last.
    assert _run(manifest, out, service.url, limit=2, descending=True).is_completed()
    assert _created(service.url) == 4
    assert _statuses(out) == {f"r{i}": "skipped" if i == 0 else "succeeded" for i in range(6)}


def test_an_order_column_that_does_not_exist_is_one_message_and_nothing_runs(
    tmp_path: Path,
) -> None:
    manifest = _catalog(tmp_path)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "img2svg.cli", "convert", str(manifest), "--out", str(out),
         "--id-column", "id", "--order-by", "nope"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    message = " ".join(done.stderr.split())
    assert "has no column 'nope' (columns: id, image_url, prio)" in message
    assert "--order-by" in message
    assert "Traceback" not in done.stderr
    assert not out.exists()
