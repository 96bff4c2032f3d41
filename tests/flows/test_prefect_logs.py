"""img2svg.* logs reach the flow run's logs in the Prefect API (PREFECT_LOGGING_EXTRA_LOGGERS),
as the CLI and prefect.yaml set up: read back through the Prefect client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL

from tests.helpers import image_manifest

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_sends_img2svg_logs_to_the_ui() -> None:
    config = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))
    for deployment in config["deployments"]:
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "img2svg", deployment["name"]


def test_a_cli_runs_client_retries_are_in_its_flow_run_logs(start_service, tmp_path: Path):
    """A faulty API makes the client retry; its INFO lines (logger img2svg.client) are read
    back from the flow run's logs on the same Prefect API the CLI ran against."""
    service = start_service("--fault-rate", "0.5", "--seed", "7")
    manifest = image_manifest(tmp_path, [0, 1, 2])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HIDREAM_"))}
    env |= {
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the test harness's API
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    command = [
        sys.executable, "-m", "img2svg.cli", "convert", str(manifest),
        "--out", str(tmp_path / "out"), "--api-url", service.url, "--rate-limit", "0",
        "--max-failure-ratio", "1", "--verbose",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode in (0, 1), done.stdout + done.stderr

    async def logs() -> list:
        async with get_client() as client:
            recent = await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50)
            runs = [run for run in recent if run.parameters.get("manifest") == str(manifest)]
            assert len(runs) == 1, runs
            of_the_run = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id]))
            found: list = []
            while page := await client.read_logs(of_the_run, limit=200, offset=len(found)):
                found += page
            return found

    found = [(log.name, log.message) for log in asyncio.run(logs())]
    assert any(name == "img2svg.client" and "retrying in" in text for name, text in found), found
