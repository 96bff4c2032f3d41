"""What scoring costs a run: `img2svg convert` on a manifest with and without `--no-score`.

Runs alternate (scored, unscored, scored...) into fresh output folders, so neither side is
favoured by warm caches, and the medians are compared. The goal (issue #11): scoring costs a
run at most 20 % more wall on the sample manifest.

    uv run python bench/score_overhead.py [--manifest manifests/sample.csv] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(manifest: str, out: Path, score: bool, mode: str) -> float:
    command = [sys.executable, "-m", "img2svg.cli", "convert", manifest, "--out", str(out)]
    command += ["--mode", mode] + ([] if score else ["--no-score"])
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"convert failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="manifests/sample.csv")
    parser.add_argument("--runs", type=int, default=5, help="runs of each kind")
    parser.add_argument("--mode", choices=["fast", "slow"], default="fast")
    args = parser.parse_args()
    walls: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="img2svg-score-bench-") as folder:
        for i in range(args.runs):
            for score in (True, False) if i % 2 == 0 else (False, True):
                out = Path(folder) / f"out-{i}-{int(score)}"
                wall = one_run(args.manifest, out, score, args.mode)
                walls[score].append(wall)
                load = os.getloadavg()[0]
                label = "scored  " if score else "unscored"
                print(f"run {i + 1} {label} {wall:6.2f} s   (load {load:.2f})", flush=True)
    scored, unscored = statistics.median(walls[True]), statistics.median(walls[False])
    ratio = scored / unscored
    print(f"median scored {scored:.2f} s, unscored {unscored:.2f} s: +{ratio - 1:.1%}")
    print(("PASS" if ratio <= 1.20 else "FAIL") + " scoring costs at most 20 % more wall")


if __name__ == "__main__":
    main()
