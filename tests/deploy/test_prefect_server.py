"""prefect.yaml for real: a Prefect server, a process work pool, `prefect deploy`, a worker, a run.

Everything runs as the README says a user would: `prefect server start` on a loopback port (with
its own PREFECT_HOME), `prefect work-pool create`, `prefect deploy --name img2svg-manual` from the
repository root, `prefect worker start`, `prefect deployment run ... --param ...`. The run is
then read back through the Prefect client: its state, name and artifacts. Every process started
here is stopped at teardown, pass or fail. Nothing leaves loopback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import defusedxml.ElementTree as ET
import pandas as pd
import pytest
import sqlalchemy
import yaml
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    DeploymentFilter,
    DeploymentFilterId,
)
from prefect.client.schemas.objects import FlowRun

from tests.helpers import logo_png
from tests.stack import POOL, REPO, PrefectStack, _tail, running_prefect

PREFECT_YAML = REPO / "prefect.yaml"
FLOW = "img2svg-convert"
MANUAL = f"{FLOW}/img2svg-manual"
NIGHTLY = f"{FLOW}/img2svg-nightly"
# Keyed by deployment and manifest stem: the manual deployment on deploy-check.csv.
ARTIFACT_KEYS = {
    "img2svg-manual-deploy-check-counts",
    "img2svg-manual-deploy-check-report",
    "img2svg-manual-deploy-check-progress",
}


@pytest.fixture(scope="module")
def prefect_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectStack]:
    """One server for this module, with the process work pool the deployments use."""
    with running_prefect(tmp_path_factory.mktemp("prefect")) as stack:
        yield stack


def _manifest(tmp_path: Path) -> Path:
    """A small CSV (id,image_url) with relative paths to images made here."""
    folder = tmp_path / "catalog"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(3):
        (folder / "images" / f"logo-{i}.png").write_bytes(logo_png(64 + 8 * i, seed=i))
        rows.append({"id": f"logo-{i}", "image_url": f"images/logo-{i}.png"})
    manifest = folder / "deploy-check.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


async def _deployment(client: Any, name: str) -> Any:
    return await client.read_deployment_by_name(name)


async def _runs_of(client: Any, deployment_id: UUID) -> list[FlowRun]:
    return await client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    )


async def _flow_run(client: Any, run_id: UUID) -> FlowRun:
    return await client.read_flow_run(run_id)


async def _artifacts(client: Any, run_id: UUID) -> dict[str, Any]:
    found = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    return {a.key: a for a in found if a.key}


def _infrastructure_group(flow_run: FlowRun) -> int | None:
    """The worker starts each flow run in its own session; its pid is recorded on the run."""
    pid = (flow_run.infrastructure_pid or "").rpartition(":")[2]
    return int(pid) if pid.isdigit() else None


@pytest.mark.timeout(240)
def test_manual_deployment_runs_on_a_process_worker(
    prefect_stack: PrefectStack, tmp_path: Path
) -> None:
    stack = prefect_stack
    manifest = _manifest(tmp_path)
    out = tmp_path / "out"

    deployed = stack.cli("deploy", "--name", "img2svg-manual", "--no-prompt")
    assert MANUAL in deployed, deployed

    deployment = stack.call(_deployment, MANUAL)
    assert deployment.work_pool_name == POOL
    assert deployment.schedules == []
    assert deployment.parameters == {"manifest": "manifests/sample.csv", "out": "out/manual"}
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]
    schema = deployment.parameter_openapi_schema["properties"]
    assert schema["mode"]["enum"] == ["fast", "slow"]
    assert "Secret block" in schema["token_block"]["description"]
    assert not any("token" in name and name != "token_block" for name in schema)

    stack.spawn("worker", "worker", "start", "--pool", POOL, "--type", "process")
    stack.cli(
        "deployment", "run", MANUAL,
        "--param", f"manifest={manifest}",
        "--param", f"out={out}",
    )  # fmt: skip

    (run,) = stack.call(_runs_of, deployment.id)
    assert run.parameters == {"manifest": str(manifest), "out": str(out)}
    deadline = time.monotonic() + 150
    while not (run.state and run.state.is_final()):
        group = _infrastructure_group(run)
        if group and group not in stack.extra_groups:
            stack.extra_groups.append(group)
        assert time.monotonic() < deadline, (
            f"flow run still {run.state_name} after 150 s\nworker:\n{stack.log('worker')}"
        )
        time.sleep(1)
        run = stack.call(_flow_run, run.id)

    assert run.state is not None and run.state.is_completed(), (
        f"flow run ended {run.state_name}: {run.state and run.state.message}\n"
        f"worker:\n{stack.log('worker')}"
    )
    assert "deploy-check" in run.name
    assert "3/3 succeeded" in (run.state.message or "")

    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 3
    assert results["status"].tolist() == ["succeeded"] * 3
    svgs = sorted((out / "svgs").glob("*.svg"))
    assert len(svgs) == 3
    for svg in svgs:
        assert ET.fromstring(svg.read_bytes()).tag.endswith("svg")

    artifacts = stack.call(_artifacts, run.id)
    assert set(artifacts) >= ARTIFACT_KEYS, sorted(artifacts)
    counts = artifacts["img2svg-manual-deploy-check-counts"]
    assert counts.type == "table"
    table = json.loads(counts.data) if isinstance(counts.data, str) else counts.data
    assert {"status": "succeeded", "rows": 3, "share": "100.0%"} in table
    report = artifacts["img2svg-manual-deploy-check-report"]
    assert report.type == "markdown"
    assert "3 of 3 rows succeeded" in report.data
    assert "results.parquet" in report.data
    progress = artifacts["img2svg-manual-deploy-check-progress"]
    assert progress.type == "progress"
    assert float(progress.data) == 100.0


# Prefect 3.8's scheduler inserts runs with a "state" key that SQLAlchemy 2.1 refuses in bulk
# DML ("please supply a bulk_dml decorated function"): schedules then never produce a run.
SQLALCHEMY_21 = tuple(int(p) for p in sqlalchemy.__version__.split(".")[:2]) >= (2, 1)


@pytest.mark.timeout(240)
@pytest.mark.xfail(
    SQLALCHEMY_21,
    reason="Prefect 3.8 scheduler + SQLAlchemy 2.1: no scheduled runs (pin sqlalchemy<2.1)",
    strict=True,
)
def test_nightly_deployment_is_scheduled_at_two_utc(prefect_stack: PrefectStack) -> None:
    """Deployed as declared; the server's scheduler creates its upcoming runs at 02:00 UTC."""
    stack = prefect_stack
    deployed = stack.cli("deploy", "--name", "img2svg-nightly", "--no-prompt")
    assert NIGHTLY in deployed, deployed

    deployment = stack.call(_deployment, NIGHTLY)
    assert deployment.work_pool_name == POOL
    (schedule,) = deployment.schedules
    assert schedule.active
    assert schedule.schedule.cron == "0 2 * * *"
    assert schedule.schedule.timezone == "UTC"
    assert deployment.parameters["token_block"] == "hidream-token"
    assert deployment.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]

    deadline = time.monotonic() + 30
    runs: list[FlowRun] = []
    while not runs:
        server_log = _tail(stack.logs / "server.log", 400)
        assert "bulk_dml" not in server_log, f"the scheduler failed:\n{stack.log('server')}"
        assert time.monotonic() < deadline, "no scheduled run after 30 s"
        time.sleep(1)
        runs = stack.call(_runs_of, deployment.id)
    for run in runs:
        assert run.state_name == "Scheduled"
        start = run.expected_start_time
        assert start is not None
        assert (start.hour, start.minute, start.utcoffset()) == (2, 0, timedelta(0))


def test_prefect_yaml_declares_the_deployments() -> None:
    """The nightly deployment is not run here (it needs the real API): its declaration is read.
    The shard deployment is run by tests/scale/test_shards.py."""
    config = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    deployments = {d["name"]: d for d in config["deployments"]}
    assert set(deployments) == {
        "img2svg-nightly", "img2svg-manual", "img2svg-shard", "img2svg-receive"
    }  # fmt: skip
    receiver = deployments.pop("img2svg-receive")
    assert receiver["entrypoint"] == "flows/receive.py:receive"
    assert receiver["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert receiver["schedules"] == [{"interval": 300, "active": False}]  # on when reachable
    shard = deployments.pop("img2svg-shard")
    assert shard["entrypoint"] == "flows/shards.py:convert_shard"
    assert shard["work_pool"]["name"] == POOL
    assert shard["schedules"] == []
    assert "parameters" not in shard  # every shard's come from the run that splits
    assert config["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}
    ]
    for deployment in deployments.values():
        assert deployment["entrypoint"] == "flows/convert.py:convert"
        assert deployment["work_pool"]["name"] == POOL
        names = set(deployment["parameters"]) - {"token_block"}
        assert not any("token" in name for name in names)
    (schedule,) = deployments["img2svg-nightly"]["schedules"]
    assert schedule == {"cron": "0 2 * * *", "timezone": "UTC", "active": True}
    assert deployments["img2svg-nightly"]["parameters"]["token_block"] == "hidream-token"
    assert deployments["img2svg-manual"]["schedules"] == []
    assert deployments["img2svg-manual"]["parameters"] == {
        "manifest": "manifests/sample.csv",
        "out": "out/manual",
    }
