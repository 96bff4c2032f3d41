"""The PostgreSQL ledger restarts mid-run (every connection cut): the run reconnects and goes on.

Against `img2svg serve --no-idempotency` (HiDream's billing), once 40 tasks exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.outages.catalog import catalog, finished_whole, wait_for_tasks


def test_a_run_reconnects_to_a_restarted_ledger_and_pays_nothing_twice(
    tmp_path: Path, start_service, postgres_server
) -> None:
    service = start_service("--no-idempotency", "--latency", "0.2")
    ledger = postgres_server.create_database(f"outage_{os.getpid()}")
    manifest = catalog(tmp_path, 150)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HIDREAM_"))}
    with httpx.Client(base_url=service.url) as api:
        run = subprocess.Popen(
            [sys.executable, "-m", "img2svg.cli", "convert", str(manifest), "--out", str(out),
             "--api-url", service.url, "--rate-limit", "0", "--no-score", "--ledger", ledger],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wait_for_tasks(api, 40, run)
        postgres_server.restart()
        finished_whole(run, out, api, 150)
