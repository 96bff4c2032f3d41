"""How close a run comes to keeping an API's concurrency window full.

    uv run python bench/saturation.py [--rows 300 --latency 2 --in-flight 10]

Starts `img2svg serve --max-concurrency N --latency L --no-idempotency` (a service that answers
429 beyond N tasks in progress and takes L seconds more per task), makes a manifest of distinct
images (`make_manifest.py`), and times a fresh `img2svg convert` (a subprocess with its own
PREFECT_HOME and temporary Prefect server, as a first run on a machine starts it) twice: with
`--max-in-flight N`, and without it (the window learned from 429s). The ideal is
rows x latency / N: the service always full, nothing else counted. Each run prints its wall time
and ratio to the ideal, the mean task duration the pipeline recorded (`finished_at -
submitted_at` in results.parquet) beside the service's own (`finished_at - created_at` in its
task store), how full the service was kept while busy, and POSTs, tasks and 429s seen.

On 2 cores (300 rows, 10 in flight, 2 s each; ideal 60 s): 79-80 s (1.31-1.33x) with a fresh
PREFECT_HOME, 12.5 s of it before the first task (Prefect's server making its database); 74 s
(1.24x) with `--prefect-home` kept from an earlier run; either way the service is busy 1.07x
its ideal and each end is noticed 0.04-0.05 s after the service records it.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from img2svg.service.embedded import EmbeddedService

HERE = Path(__file__).resolve().parent
TOKEN = "bench-saturation-token"


def metrics(url: str) -> dict[str, float]:
    """The service's Prometheus counters, by sample name (labels included)."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def service_tasks(data_dir: Path) -> pd.DataFrame:
    with sqlite3.connect(f"file:{data_dir / 'tasks.sqlite3'}?mode=ro", uri=True) as db:
        return pd.read_sql_query(
            "SELECT task_id, status, created_at, started_at, finished_at FROM tasks", db
        )


def run(root: Path, label: str, args: argparse.Namespace, extra: list[str]) -> None:
    data_dir = root / f"svc-{label}"
    out = root / f"out-{label}"
    service_args = [
        "--max-concurrency", str(args.in_flight), "--latency", str(args.latency),
        "--no-idempotency", "--token", TOKEN, "--workers", str(args.workers),
    ]  # fmt: skip
    with EmbeddedService(data_dir, extra_args=service_args) as service:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
        env |= {
            "HIDREAM_API_TOKEN": TOKEN,
            "PREFECT_HOME": str(args.prefect_home or root / f"prefect-{label}"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        }
        command = [
            sys.executable, "-m", "img2svg.cli", "convert", str(root / "manifest.csv"),
            "--out", str(out), "--api-url", service.url, "--rate-limit", "0", "--no-score",
            *extra,
        ]  # fmt: skip
        started, started_at = time.monotonic(), time.time()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall, ended_at = time.monotonic() - started, time.time()
        seen = metrics(service.url)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
    results = pd.read_parquet(out / "results.parquet")
    tasks = service_tasks(data_dir)
    ideal = args.rows * args.latency / args.in_flight
    recorded = (results["finished_at"] - results["submitted_at"]).dropna()
    own = (tasks["finished_at"] - tasks["created_at"]).dropna()
    busy = tasks["finished_at"].max() - tasks["created_at"].min()
    refused = sum(v for k, v in seen.items() if k.startswith("img2svg_refusals_total"))
    print(f"\n== {label}: {' '.join(extra) or '(window learned from 429s)'}")
    print(f"exit {done.returncode}; rows by status {results['status'].value_counts().to_dict()}")
    print(
        f"wall time {wall:.1f} s; ideal {ideal:.1f} s ({args.rows} x {args.latency:g} s / "
        f"{args.in_flight}); ratio {wall / ideal:.2f}x"
    )
    print(
        f"task duration: recorded by the pipeline {recorded.mean():.2f} s mean "
        f"(p95 {recorded.quantile(0.95):.2f} s), the service's own {own.mean():.2f} s mean; "
        f"noticed {recorded.mean() - own.mean():.2f} s late on average"
    )
    print(
        f"service busy {busy:.1f} s from first task to last ({busy / ideal:.2f}x ideal), "
        f"{own.sum() / busy:.1f} tasks in flight on average; "
        f"POSTs {seen.get('img2svg_submit_requests_total', 0):.0f}, "
        f"tasks {seen.get('img2svg_tasks_created_total', 0):.0f}, 429s and other refusals "
        f"{refused:.0f}"
    )
    print(
        f"before the first task: {tasks['created_at'].min() - started_at:.1f} s; "
        f"after the last one ended: {ended_at - tasks['finished_at'].max():.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds added per task")
    parser.add_argument("--in-flight", type=int, default=10, help="the service's --max-concurrency")
    parser.add_argument("--workers", type=int, default=2, help="the service's vectorizers")
    parser.add_argument(
        "--mode", choices=["both", "known", "learned"], default="both",
        help="known: --max-in-flight N; learned: the window learned from 429s",
    )  # fmt: skip
    parser.add_argument(
        "--prefect-home", type=Path,
        help="a PREFECT_HOME kept between runs (its database made once); default: a fresh one "
        "per run, as on a first `img2svg convert`, whose server start includes making it",
    )  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="img2svg-saturation-") as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, str(HERE / "make_manifest.py"), str(root), "--rows", str(args.rows)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print(
            f"{args.rows} distinct images; service: {args.in_flight} tasks in flight, "
            f"{args.latency:g} s each"
        )
        if args.mode in ("both", "known"):
            run(root, "known", args, ["--max-in-flight", str(args.in_flight)])
        if args.mode in ("both", "learned"):
            run(root, "learned", args, [])


if __name__ == "__main__":
    main()
