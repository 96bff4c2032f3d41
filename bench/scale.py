"""Catalog scale: wall time and peak memory of `img2svg convert` on large catalogs.

    uv run python bench/scale.py                      # every scenario (~15 minutes, 2 cores)
    uv run python bench/scale.py --only dry,nightly   # some of them

Scenarios (each runs the real CLI in a subprocess; peak RSS is the whole process tree's, the
embedded service and its workers included, sampled every 50 ms from /proc):

- dry:        1,000,000 and 100,000 rows of public https:// URLs, `--dry-run`, no token and
              no API URL: the cost line, wall and peak RSS, and the ratio of the two peaks.
- nightly:    100,000 rows over 1,000 distinct local images: the first run (1,000 tasks,
              100,000 SVGs), then the same command again (the nightly rerun: 0 tasks).
- window:     300 rows against `img2svg serve --max-concurrency 10 --latency 2` (10 tasks in
              flight, 2 s each: 60 s is the ideal), with the window learned from 429s and with
              `--max-in-flight 10`.
- throughput: 4,000 images on one service, a hand-written asyncio client (submit with 8
              requests in flight, poll in batches, download) against the pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from img2svg.service.embedded import EmbeddedService  # noqa: E402

API = "/api-pub/gw/v2/image/img2svg/async"


def tree_rss_kib(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as handle:
                pages = int(handle.read().split()[1])
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        rss[pid] = pages * os.sysconf("SC_PAGE_SIZE") // 1024
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total


def measure(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """(wall seconds, peak tree RSS in MiB, stdout) of one command."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kib(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    done.set()
    sampler.join()
    wall = time.monotonic() - started
    if process.returncode not in (0, 1):
        print(err.decode()[-3000:])
        raise SystemExit(f"{command[3:5]} exited {process.returncode}")
    return wall, peak // 1024, out.decode()


def environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "HIDREAM"))}
    env |= {"PREFECT_HOME": str(root / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    return env


def convert(manifest: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "img2svg.cli", "convert", str(manifest), "--out", str(out),
            "--max-failure-ratio", "1", *extra]  # fmt: skip


def url_manifest(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sku", "image_url", "updated_at"])
        for i in range(rows):
            writer.writerow([f"sku-{i:07d}", f"https://img{i % 50}.example.com/c/{i}.jpg", "v1"])
    return path


def local_manifest(root: Path, rows: int, distinct: int) -> Path:
    subprocess.run(
        [sys.executable, str(HERE / "make_manifest.py"), str(root / "images-src"),
         "--rows", str(distinct), "--size", "48"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    manifest = root / "catalog.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image_url"])
        for i in range(rows):
            writer.writerow([f"r{i:07d}", f"images-src/images/{i % distinct:06d}.png"])
    return manifest


def dry(root: Path) -> None:
    print("\n== dry run, public URLs, no token, no API URL")
    peaks = {}
    for rows in (100_000, 1_000_000):
        manifest = url_manifest(root / f"urls-{rows}.csv", rows)
        cmd = convert(manifest, root / f"out-dry-{rows}", "--dry-run", "--id-column", "sku",
                      "--version-column", "updated_at")  # fmt: skip
        wall, peak, out = measure(cmd, environment(root))
        cost = next((line for line in out.splitlines() if line.startswith("Cost")), "?")
        peaks[rows] = peak
        print(f"{rows:>9} rows: {wall:6.1f} s, peak RSS {peak} MiB; {cost}")
    print(f"peak RSS 1M / 100k: {peaks[1_000_000] / peaks[100_000]:.2f}")


def nightly(root: Path) -> None:
    print("\n== 100,000 rows over 1,000 distinct local images (embedded service)")
    manifest = local_manifest(root, 100_000, 1_000)
    out = root / "out-nightly"
    cmd = convert(manifest, out, "--id-column", "id")
    for label in ("first run", "nightly rerun"):
        wall, peak, text = measure(cmd, environment(root))
        svgs = sum(1 for _ in (out / "svgs").iterdir())
        tasks = _tasks_created(out / ".img2svg-service")
        print(f"{label}: {wall:6.1f} s, peak RSS {peak} MiB; {svgs} SVGs; tasks in store {tasks}")
        print("   " + " | ".join(line.strip() for line in text.splitlines()[3:6]))


def _tasks_created(data_dir: Path) -> int:
    import sqlite3

    with sqlite3.connect(data_dir / "tasks.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]


def window(root: Path) -> None:
    print("\n== 300 rows, 10 tasks in flight at 2 s each (ideal 60 s)")
    subprocess.run(
        [sys.executable, str(HERE / "make_manifest.py"), str(root / "w"), "--rows", "300",
         "--size", "32"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    # A fresh PREFECT_HOME costs its first run the creation of Prefect's database: once per
    # machine, not per night. Shown apart; the timed runs below start warm.
    warm = convert(root / "w" / "manifest.csv", root / "out-warm", "--dry-run")
    first = measure(warm, environment(root))[0]
    print(f"first run on a fresh PREFECT_HOME (a dry run): {first:.1f} s")
    for label, extra in (
        ("learned from 429s", []),
        ("--max-in-flight 10", ["--max-in-flight", "10"]),
    ):
        args = ["--max-concurrency", "10", "--latency", "2", "--workers", "2"]
        with EmbeddedService(root / f"svc-window-{len(extra)}", extra_args=args) as service:
            cmd = convert(root / "w" / "manifest.csv", root / f"out-window-{len(extra)}",
                          "--api-url", service.url, "--rate-limit", "0", *extra)  # fmt: skip
            wall, _, out = measure(cmd, environment(root))
            ok = "succeeded" in out and "300" in out
            print(f"{label}: {wall:5.1f} s = {wall / 60:.2f} x ideal (all succeeded: {ok})")


async def hand_written(url: str, images: list[Path], out: Path) -> None:
    """The baseline: what a developer would write with httpx and asyncio (8 requests in flight,
    batch polls, concurrent downloads), with no ledger, no checks and no Prefect."""
    out.mkdir(parents=True, exist_ok=True)
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def submit(path: Path) -> str:
            async with gate:
                body = {"image": base64.b64encode(path.read_bytes()).decode(), "mode": "fast"}
                answer = (await http.post(API, json=body)).json()
                return answer["result"]["task_id"]

        async def query(ids: list[str]) -> list[dict]:
            async with gate:
                answer = await http.post(API + "/results/batch", json={"task_id_list": ids})
                return answer.json()["result"]

        async def fetch(task_id: str, svg_url: str) -> None:
            async with gate:
                svg = (await http.get(svg_url)).content
            (out / f"{task_id}.svg").write_bytes(svg)

        pending = set(await asyncio.gather(*(submit(p) for p in images)))
        while pending:
            ids = list(pending)
            answers = await asyncio.gather(
                *(query(ids[i : i + 100]) for i in range(0, len(ids), 100))
            )
            done = []
            for entry in (e for answer in answers for e in answer):
                sub = entry["sub_task_results"][0]
                if sub["task_status"] in (1, 3, 4):
                    pending.discard(entry["task_id"])
                    if sub["task_status"] == 1:
                        done.append(fetch(entry["task_id"], sub["image"]))
            await asyncio.gather(*done)
            if pending:
                await asyncio.sleep(0.5)


def throughput(root: Path) -> None:
    print("\n== 4,000 distinct images: hand-written asyncio client vs the pipeline")
    subprocess.run(
        [sys.executable, str(HERE / "make_manifest.py"), str(root / "t"), "--rows", "4000",
         "--size", "48"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    images = sorted((root / "t" / "images").iterdir())
    with EmbeddedService(root / "svc-baseline") as service:
        started = time.monotonic()
        asyncio.run(hand_written(service.url, images, root / "out-baseline"))
        baseline = time.monotonic() - started
    with EmbeddedService(root / "svc-pipeline") as service:
        cmd = convert(root / "t" / "manifest.csv", root / "out-pipeline", "--api-url", service.url,
                      "--rate-limit", "0", "--id-column", "id")  # fmt: skip
        wall, peak, _ = measure(cmd, environment(root))
    print(f"hand-written: {baseline:.1f} s ({len(images) / baseline:.1f} images/s)")
    print(f"pipeline:     {wall:.1f} s ({len(images) / wall:.1f} images/s), peak RSS {peak} MiB")
    print(f"throughput ratio (pipeline / hand-written): {baseline / wall:.2f}")


SCENARIOS = {"dry": dry, "nightly": nightly, "window": window, "throughput": throughput}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="img2svg-scale-") as tmp:
        for name in args.only.split(","):
            SCENARIOS[name](Path(tmp))


if __name__ == "__main__":
    main()
