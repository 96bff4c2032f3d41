"""The pipeline against a stand-in for HiDream's real API, written from its documentation alone.

    uv run python bench/standin.py [--rows 65 --distinct 60]

The stand-in (`tests/standin/hidream.py`) does not dedupe resent submissions, answers 10 % of
requests with an HTML 500 (half of them after creating the task) and drops 10 % of submissions
after creating their task, uses integer ids and `sub_task_ids: null`, redirects result URLs to
short-lived signed links and serves SVGs with an XML declaration and a DOCTYPE. The same
command runs twice, then once with `--resubmit-unconfirmed` against a healthy stand-in; each run
prints rows by status, tasks created, POSTs sent and the most tasks any one image got.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import logo_png
from tests.standin.hidream import HiDreamStandIn, Quirks

TOKEN = "bench-token"


def manifest(root: Path, rows: int, distinct: int) -> Path:
    images = root / "images"
    images.mkdir()
    for i in range(distinct):
        (images / f"{i}.png").write_bytes(logo_png(40, seed=i))
    path = root / "m.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image_url"])
        writer.writerows([f"r{i}", f"images/{i % distinct}.png"] for i in range(rows))
    return path


def run(label: str, api: HiDreamStandIn, path: Path, out: Path, *extra: str) -> pd.DataFrame:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"HIDREAM_API_TOKEN": TOKEN, "PREFECT_HOME": str(out.parent / "prefect")}
    posts, tasks = api.submit_posts, api.tasks_created
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "img2svg.cli", "convert", str(path), "--out", str(out),
         "--api-url", api.url, "--id-column", "id", "--rate-limit", "0",
         "--max-failure-ratio", "1", *extra],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    results = pd.read_parquet(out / "results.parquet")
    print(f"\n== {label} ({time.monotonic() - started:.1f} s, exit {done.returncode})")
    print(f"rows by status: {results['status'].value_counts().to_dict()}")
    print(
        f"tasks created: {api.tasks_created - tasks} (total {api.tasks_created}); "
        f"POSTs sent: {api.submit_posts - posts}; most tasks for one image: "
        f"{api.max_tasks_per_image()}; expired links met: {api.expired_downloads}"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=65)
    parser.add_argument("--distinct", type=int, default=60)
    args = parser.parse_args()
    quirks = Quirks(
        seed=1,
        token=TOKEN,
        integer_ids=True,
        null_sub_task_ids=True,
        error_rate=0.1,
        lose_rate=0.1,
        processing_s=0.5,
    )
    with tempfile.TemporaryDirectory(prefix="img2svg-standin-") as tmp:
        root = Path(tmp)
        path = manifest(root, args.rows, args.distinct)
        out = root / "out"
        print(f"manifest: {args.rows} rows, {args.distinct} distinct images")
        with HiDreamStandIn(quirks) as api:
            run("first run", api, path, out)
            second = run("same command again", api, path, out)
            unconfirmed = int((second["status"] == "unconfirmed").sum())
            images = second.loc[second["status"] == "unconfirmed", "image"].nunique()
            api.quirks = replace(api.quirks, error_rate=0.0, lose_rate=0.0)
            run("--resubmit-unconfirmed (API healthy again)", api, path, out,
                "--resubmit-unconfirmed")  # fmt: skip
            print(f"(unconfirmed before: {unconfirmed} rows over {images} images)")


if __name__ == "__main__":
    main()
