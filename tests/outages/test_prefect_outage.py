"""The Prefect API goes away mid-run (its server SIGKILLed) and comes back 45 s later, on the
same port and database: the run goes on converting, pays for nothing twice, and ends well."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.outages.catalog import catalog, finished_whole, wait_for_tasks
from tests.stack import REPO, kill_machine, running_prefect

OUTAGE_S = 45


def test_a_run_outlives_a_prefect_api_outage(tmp_path: Path, start_service) -> None:
    service = start_service("--no-idempotency", "--latency", "0.2")
    manifest = catalog(tmp_path, 150)
    out = tmp_path / "out"
    with (
        running_prefect(tmp_path / "prefect") as prefect,
        httpx.Client(base_url=service.url) as api,
    ):
        run = subprocess.Popen(
            [sys.executable, "-m", "img2svg.cli", "convert", str(manifest), "--out", str(out),
             "--api-url", service.url, "--rate-limit", "0", "--max-in-flight", "4", "--no-score"],
            cwd=REPO, env=prefect.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        wait_for_tasks(api, 40, run)
        kill_machine(prefect.processes[0][1])  # the server, and what it started
        time.sleep(OUTAGE_S)
        prefect.spawn("server-again", "server", "start", "--host", "127.0.0.1", "--port",
                      str(prefect.port))  # fmt: skip
        prefect.processes.insert(0, prefect.processes.pop())  # wait_healthy watches the new one
        prefect.wait_healthy()
        finished_whole(run, out, api, 150)
