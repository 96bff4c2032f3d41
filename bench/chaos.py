"""The numbers behind "never pay twice, never lose a row", on a manifest of any size.

    uv run python bench/chaos.py --rows 500            # 20 % faults + 429s, then kill-and-resume

Scenario 1 runs `img2svg convert` against a service injecting 20 % transient faults (500/503,
dropped connections, slow answers) with a concurrency cap that answers 429. Scenario 2 SIGKILLs
the convert process group half way through and runs the same command again. Each prints rows in
and out, statuses, and tasks created on the service against distinct images submitted.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from img2svg.service.embedded import EmbeddedService

HERE = Path(__file__).resolve().parent


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        if key == name:
            return float(value)
    return 0.0


def make_manifest(root: Path, rows: int) -> int:
    subprocess.run(
        [sys.executable, str(HERE / "make_manifest.py"), str(root), "--rows", str(rows),
         "--duplicates", "0.1", "--seed", "1"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    frame = pd.read_csv(root / "manifest.csv")
    return frame["image_url"].nunique()


def command(root: Path, out: Path, url: str, rate: int) -> list[str]:
    return [
        sys.executable, "-m", "img2svg.cli", "convert", str(root / "manifest.csv"),
        "--out", str(out), "--api-url", url, "--id-column", "id",
        "--rate-limit", str(rate), "--batch-size", "50", "--max-failure-ratio", "1",
    ]  # fmt: skip


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env |= {"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return env


def report(label: str, out: Path, url: str, rows: int, distinct: int, seconds: float) -> None:
    results = pd.read_parquet(out / "results.parquet")
    counts = results["status"].value_counts().to_dict()
    print(f"\n== {label}")
    print(f"rows in {rows}, rows out {len(results)} (unique ids: {results['row_id'].is_unique})")
    print(f"statuses: {counts}")
    print(
        f"tasks created on the service: {int(metric(url, 'img2svg_tasks_created_total'))}"
        f" / distinct images: {distinct}"
    )
    print(f"submit POSTs received: {int(metric(url, 'img2svg_submit_requests_total'))}")
    print(f"wall time: {seconds:.1f} s")


def chaos(root: Path, rows: int, distinct: int) -> None:
    with EmbeddedService(
        root / "svc-chaos",
        extra_args=["--fault-rate", "0.2", "--seed", "42", "--max-concurrency", "4"],
    ) as service:
        started = time.monotonic()
        run = subprocess.run(
            command(root, root / "out-chaos", service.url, 0),
            env=environment(root),
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        print(run.stdout)
        report("20 % faults + 429s", root / "out-chaos", service.url, rows, distinct, seconds)
        print(f"exit status: {run.returncode}")


def kill_and_resume(root: Path, rows: int, distinct: int) -> None:
    with EmbeddedService(root / "svc-kill", extra_args=["--latency", "0.05"]) as service:
        cmd = command(root, root / "out-kill", service.url, 600)
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
        at_kill = int(metric(service.url, "img2svg_tasks_created_total"))
        print(f"\nSIGKILL after {time.monotonic() - started:.1f} s with {at_kill} tasks created")
        rerun = subprocess.run(cmd, env=environment(root), capture_output=True, text=True)
        seconds = time.monotonic() - started
        report(
            "kill at half way, then rerun", root / "out-kill", service.url, rows, distinct, seconds
        )
        created = int(metric(service.url, "img2svg_tasks_created_total"))
        print(
            f"tasks created by the rerun: {created - at_kill} "
            f"(= distinct {distinct} - created before the kill {at_kill}: "
            f"{created - at_kill == distinct - at_kill})"
        )
        print(f"exit status: {rerun.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="img2svg-chaos-") as tmp:
        root = Path(tmp)
        distinct = make_manifest(root, args.rows)
        print(f"manifest: {args.rows} rows, {distinct} distinct images")
        chaos(root, args.rows, distinct)
        kill_and_resume(root, args.rows, distinct)


if __name__ == "__main__":
    main()
