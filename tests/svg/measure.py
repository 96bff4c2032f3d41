"""Measure which corpus documents fire unsanitized, one fresh navigation per document and mode,
and write the result into the corpus index (`fires_raw`, `fires_raw_in`).

    uv run python -m tests.svg.measure [--write] [--settle S] [--lanes N] [NAME ...]

The test asserts what this records, so `fires_raw` is a measurement, never a guess; rerun it
with `--write` after adding documents or moving to a new Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from tests.quality.chromium import find_chromium
from tests.svg import harness
from tests.svg.harness import (
    INDEX,
    MODES,
    Harness,
    Job,
    PageServer,
    leak_server,
    load_corpus,
    run_jobs,
    start_browser,
)


async def measure(names: list[str], settle: float, lanes: int) -> dict[str, dict[str, str]]:
    binary = find_chromium()
    if binary is None:
        raise SystemExit("chromium is not installed")
    harness.SETTLE_S = settle
    entries = [entry for entry in load_corpus() if not names or entry.name in names]
    with tempfile.TemporaryDirectory() as folder, leak_server() as leak, PageServer() as pages:
        browsers = [
            await start_browser(binary, Path(folder) / f"profile-{i}") for i in range(lanes)
        ]
        try:
            runs = [Harness(browser, leak, pages, Path(folder) / "docs") for browser in browsers]
            jobs = []
            for entry in entries:
                runs[0].publish(f"raw/{entry.name}", entry.render(leak.origin, "raw"))
                jobs.append(Job((f"raw/{entry.name}",), MODES, (f"/raw/{entry.name}/",)))
            started = time.monotonic()
            seen = await run_jobs(runs, jobs)
            elapsed = time.monotonic() - started
        finally:
            for browser in browsers:
                await browser.__aexit__()
    opens = sum(run.opens for run in runs)
    print(f"{opens} opens in {elapsed:.1f} s on {lanes} lanes ({elapsed / opens:.3f} s each)")
    found = {
        job.keys[0].removeprefix("raw/"): {
            mode: observation.summary()
            for mode, observation in by_mode.items()
            if observation.fired()
        }
        for job, by_mode in seen.items()
    }
    for name in sorted(found):
        print(name, json.dumps(found[name]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*")
    parser.add_argument("--write", action="store_true", help="record the result in the index")
    parser.add_argument("--settle", type=float, default=harness.SETTLE_S)
    parser.add_argument("--lanes", type=int, default=3)
    args = parser.parse_args()
    found = asyncio.run(measure(args.names, args.settle, args.lanes))
    if args.write:
        index = json.loads(INDEX.read_text())
        for name, modes in found.items():
            index[name]["fires_raw"] = bool(modes)
            index[name]["fires_raw_in"] = [mode for mode in MODES if mode in modes]
        INDEX.write_text(json.dumps(index, indent=1) + "\n")


if __name__ == "__main__":
    main()
