"""The numbers behind "never pay twice, never lose a row", against both kinds of API.

    uv run python bench/chaos.py --rows 200          # both modes; ~5 minutes on 2 cores
    uv run python bench/chaos.py --rows 200 --mode no-idempotency

Against `img2svg serve` (dedupes Idempotency-Key) and `img2svg serve --no-idempotency`
(HiDream's documented semantics: every processed POST is a new billed task), each mode runs:

1. chaos: 20 % transient faults (500/503, answers dropped after the task was created, slow
   answers) plus 429s from a concurrency cap; the same command twice. Without idempotency, the
   lost answers leave `unconfirmed` rows; then the service is restarted without faults (the API
   is healthy again) and `--resubmit-unconfirmed` runs once.
2. kill and resume: SIGKILL of the convert process group half way, then the same command.

Each run prints rows by status, tasks created (the service's task store), POSTs received, and
the most tasks any one image got (1 means nothing was billed twice).
"""

from __future__ import annotations

import argparse
import os
import signal
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
FAULTS = ["--fault-rate", "0.2", "--seed", "42", "--max-concurrency", "4"]


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return 0.0


def store_counts(data_dir: Path) -> tuple[int, int]:
    """(tasks created, most tasks for one image), read from the service's own task store."""
    with sqlite3.connect(data_dir / "tasks.sqlite3") as db:
        (tasks,) = db.execute("SELECT COUNT(*) FROM tasks").fetchone()
        most = db.execute(
            "SELECT COUNT(*) FROM tasks GROUP BY body_hash ORDER BY 1 DESC LIMIT 1"
        ).fetchone()
    return tasks, most[0] if most else 0


def make_manifest(root: Path, rows: int) -> int:
    subprocess.run(
        [sys.executable, str(HERE / "make_manifest.py"), str(root), "--rows", str(rows),
         "--seed", "1"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return pd.read_csv(root / "manifest.csv")["image_url"].nunique()


def command(root: Path, out: Path, url: str, rate: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "img2svg.cli", "convert", str(root / "manifest.csv"),
        "--out", str(out), "--api-url", url, "--id-column", "id",
        "--rate-limit", str(rate), "--chunk-size", "50", "--max-failure-ratio", "1", *extra,
    ]  # fmt: skip


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return env


class Counter:
    """Tasks and POSTs of one service data dir, across restarts (metrics restart at zero)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.posts_before_restarts = 0

    def posts(self, url: str) -> int:
        return self.posts_before_restarts + int(metric(url, "img2svg_submit_requests_total"))


def run(label: str, cmd: list[str], root: Path, service: EmbeddedService, counter: Counter):
    tasks_before, _ = store_counts(counter.data_dir)
    posts_before = counter.posts(service.url)
    started = time.monotonic()
    done = subprocess.run(cmd, env=environment(root), capture_output=True, text=True)
    seconds = time.monotonic() - started
    results = pd.read_parquet(Path(cmd[cmd.index("--out") + 1]) / "results.parquet")
    tasks, most = store_counts(counter.data_dir)
    statuses = results["status"].value_counts().to_dict()
    print(f"\n== {label}  ({seconds:.1f} s, exit {done.returncode})")
    print(f"rows out {len(results)} (unique ids: {results['row_id'].is_unique}); {statuses}")
    print(
        f"tasks created: {tasks - tasks_before} (total {tasks}); "
        f"POSTs received: {counter.posts(service.url) - posts_before}; "
        f"most tasks for one image: {most}"
    )
    return results


def chaos(root: Path, distinct: int, deduped: bool) -> None:
    mode = [] if deduped else ["--no-idempotency"]
    data_dir = root / f"svc-chaos-{deduped}"
    counter = Counter(data_dir)
    out = root / f"out-chaos-{deduped}"
    service = EmbeddedService(data_dir, extra_args=[*FAULTS, *mode]).start()
    try:
        cmd = command(root, out, service.url, 0)
        run("chaos, first run", cmd, root, service, counter)
        second = run("chaos, same command again", cmd, root, service, counter)
        counter.posts_before_restarts = counter.posts(service.url)
    finally:
        service.stop()
    unconfirmed = int((second["status"] == "unconfirmed").sum())
    if deduped or not unconfirmed:
        return
    print(f"\n{unconfirmed} rows unconfirmed; the service is restarted without faults")
    with EmbeddedService(data_dir, extra_args=mode) as healthy:
        cmd = command(root, out, healthy.url, 0, "--resubmit-unconfirmed")
        run("--resubmit-unconfirmed", cmd, root, healthy, counter)
    print(f"(expected: {unconfirmed} tasks created, {unconfirmed} POSTs)")


def kill_and_resume(root: Path, distinct: int, deduped: bool) -> None:
    mode = [] if deduped else ["--no-idempotency"]
    data_dir = root / f"svc-kill-{deduped}"
    counter = Counter(data_dir)
    with EmbeddedService(data_dir, extra_args=["--latency", "0.05", *mode]) as service:
        cmd = command(root, root / f"out-kill-{deduped}", service.url, 600)
        started = time.monotonic()
        first = subprocess.Popen(
            cmd,
            env=environment(root),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while metric(service.url, "img2svg_tasks_created_total") < distinct // 2:
            if first.poll() is not None:
                raise SystemExit("the first run ended before half way")
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        at_kill, _ = store_counts(data_dir)
        posts = counter.posts(service.url)
        print(
            f"\n== SIGKILL after {time.monotonic() - started:.1f} s: {at_kill} tasks, {posts} POSTs"
        )
        run("kill at half way, then the same command", cmd, root, service, counter)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200, help="distinct images")
    parser.add_argument("--mode", choices=["both", "idempotent", "no-idempotency"], default="both")
    args = parser.parse_args()
    modes = {"both": [True, False], "idempotent": [True], "no-idempotency": [False]}[args.mode]
    with tempfile.TemporaryDirectory(prefix="img2svg-chaos-") as tmp:
        root = Path(tmp)
        distinct = make_manifest(root, args.rows)
        print(f"manifest: {args.rows} rows, {distinct} distinct images")
        for deduped in modes:
            print(f"\n######## {'img2svg serve' if deduped else 'img2svg serve --no-idempotency'}")
            chaos(root, distinct, deduped)
            kill_and_resume(root, distinct, deduped)


if __name__ == "__main__":
    main()
