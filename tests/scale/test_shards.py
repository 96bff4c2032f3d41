"""Outgrow one machine, on real components started here: a PostgreSQL server (the shared
ledger), a Prefect server with the repository's deployments, two process workers (each with a
state directory of its own, as two machines would have), and an S3 server holding the manifest,
its images and the outputs.

`img2svg convert s3://... --shards 4 --ledger postgresql://...` is run as a user types it; the
numbers are exact: every row once in the merged results, one task per distinct image.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.objects import FlowRun

from tests.helpers import logo_png
from tests.pg import PostgresServer
from tests.s3 import S3Server, s3_server
from tests.stack import POOL, REPO, PrefectStack, kill_machine, running_prefect

SHARD_FLOW = "img2svg-shard"

pytestmark = pytest.mark.timeout(900)


@dataclass
class Cluster:
    prefect: PrefectStack
    s3: S3Server
    ledger: str  # postgresql://postgres@127.0.0.1:PORT/db: trust auth, no password
    root: Path
    workers: dict[str, subprocess.Popen[bytes]]

    def state_dir(self, worker: str) -> Path:
        return self.root / f"state-{worker}"

    def start_worker(self, name: str) -> None:
        self.workers[name] = self.prefect.spawn(
            f"worker-{name}",
            "worker", "start", "--pool", POOL, "--type", "process", "--name", name,
            # Two runs at a time each: four shards spread over both workers.
            "--limit", "2",
            env={"IMG2SVG_STATE_DIR": str(self.state_dir(name))},
        )  # fmt: skip

    def convert(
        self, manifest: str, out: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.prefect.env, "IMG2SVG_STATE_DIR": str(self.root / "state-parent"),
               **(env or {})}  # fmt: skip
        return subprocess.run(
            [sys.executable, "-m", "img2svg.cli", "convert", manifest, "--out", out,
             "--id-column", "id", "--shards", "4", "--ledger", self.ledger, "--no-score", *args],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    ledger = postgres_server.create_database("shards")
    with s3_server(root / "moto.log") as s3, running_prefect(root / "prefect") as prefect:
        prefect.extra_env.update(s3.env)
        prefect.extra_env["PREFECT_LOGGING_EXTRA_LOGGERS"] = "img2svg"
        deployed = prefect.cli("deploy", "--all", "--no-prompt", timeout_s=180)
        assert f"{SHARD_FLOW}/img2svg-shard" in deployed, deployed
        cluster = Cluster(prefect, s3, ledger, root, {})
        for name in ("w1", "w2"):
            cluster.start_worker(name)
        yield cluster


def _upload_catalog(bucket: str, seeds: list[int], size: int = 48) -> str:
    """s3://<bucket>/m.csv: rows r<i> naming images/<seed>.png (equal seeds: duplicates)."""
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(bucket)
    for seed in set(seeds):
        fs.pipe(f"{bucket}/images/{seed}.png", logo_png(size, seed=seed))
    lines = ["id,image_url", *(f"r{i},images/{seed}.png" for i, seed in enumerate(seeds))]
    fs.pipe(f"{bucket}/m.csv", ("\n".join(lines) + "\n").encode())
    return f"s3://{bucket}/m.csv"


def _results(out: str) -> pd.DataFrame:
    with fsspec.open(f"{out}/results.parquet", "rb") as handle:
        return pd.read_parquet(handle)


def _service_stores(state_dir: Path) -> list[Path]:
    return sorted(state_dir.glob("services/*/tasks.sqlite3"))


def _tasks_by_image(stores: list[Path]) -> dict[str, int]:
    """Tasks each image was billed, over every service: the service keeps each body's hash."""
    counts: dict[str, int] = {}
    for store in stores:
        with sqlite3.connect(store) as db:
            for body_hash, n in db.execute("SELECT body_hash, COUNT(*) FROM tasks GROUP BY 1"):
                counts[body_hash] = counts.get(body_hash, 0) + n
    return counts


async def _shard_runs(client: Any) -> list[FlowRun]:
    return await client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=[SHARD_FLOW]))
    )


def test_four_shards_on_two_workers_share_one_ledger_and_s3(cluster: Cluster) -> None:
    seeds = [i % 150 for i in range(400)]  # 400 rows, 150 distinct images
    manifest = _upload_catalog("catalog", seeds)
    out = "s3://catalog/out"

    done = cluster.convert(manifest, out, "--max-failure-ratio", "0")
    assert done.returncode == 0, done.stdout + done.stderr

    results = _results(out)
    assert len(results) == 400
    assert results["row_id"].tolist() == [f"r{i}" for i in range(400)]  # manifest order, once
    assert results["status"].value_counts().to_dict() == {"succeeded": 400}
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    assert len(fs.ls("catalog/out/svgs")) == 400
    assert not fs.exists("catalog/out/.img2svg/parts") or not fs.ls("catalog/out/.img2svg/parts")

    # Each worker's machine ran shards, each shard its own embedded service: one task per
    # distinct image over all of them.
    stores = {w: _service_stores(cluster.state_dir(w)) for w in ("w1", "w2")}
    assert all(stores.values()), stores
    billed = _tasks_by_image(stores["w1"] + stores["w2"])
    assert len(billed) == 150
    assert max(billed.values()) == 1

    runs = cluster.prefect.call(_shard_runs)
    completed = [r for r in runs if r.state and r.state.is_completed()]
    assert len(completed) == 4, [(r.name, r.state_name) for r in runs]
    assert all(r.parent_task_run_id is not None for r in completed)  # under their parent in the UI

    # The same command again pays for nothing: every image is in the shared ledger.
    again = cluster.convert(manifest, out, "--max-failure-ratio", "0")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _results(out)["reused"].all()
    assert (
        _tasks_by_image(
            [*_service_stores(cluster.state_dir("w1")), *_service_stores(cluster.state_dir("w2"))]
        )
        == billed
    )


def test_a_worker_killed_mid_run_then_the_same_command_completes_unbilled_twice(
    cluster: Cluster, start_service: Any
) -> None:
    """Against one shared API (as HiDream is to every shard): a machine dies with its shards,
    the run ends with their rows as errors, and the same command finishes them by polling
    what they had submitted; no image is billed twice."""
    api = start_service("--allow-private-urls", "--workers", "1", "--latency", "0.05")
    seeds = [i % 120 for i in range(150)]
    manifest = _upload_catalog("killed", seeds, size=64)
    out = "s3://killed/out"
    args = ("--api-url", api.url, "--rate-limit", "0", "--max-failure-ratio", "1")

    env = {**cluster.prefect.env, "IMG2SVG_STATE_DIR": str(cluster.root / "state-parent")}
    first = subprocess.Popen(
        [sys.executable, "-m", "img2svg.cli", "convert", manifest, "--out", out,
         "--id-column", "id", "--shards", "4", "--ledger", cluster.ledger, "--no-score", *args],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    busy = cluster.state_dir("w1") / "runs"
    deadline = time.monotonic() + 240
    while not (any(busy.glob("*.sqlite3")) and _created(api.data_dir) >= 20):
        assert first.poll() is None, first.stdout.read() if first.stdout else ""
        assert time.monotonic() < deadline, "worker w1 never ran a shard"
        time.sleep(0.2)
    kill_machine(cluster.workers["w1"])
    killed_at = _created(api.data_dir)

    output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output  # it ends, the dead shards' rows as errors (ratio 1)
    partial = _results(out)
    assert len(partial) == 150
    assert (partial["status"] != "succeeded").any()
    failed = partial[partial["status"] != "succeeded"]
    assert failed["error"].str.contains("run the same command again").all(), failed["error"]

    cluster.start_worker("w1")  # the machine's replacement
    second = cluster.convert(manifest, out, *args)
    assert second.returncode == 0, second.stdout + second.stderr
    results = _results(out)
    assert results["status"].value_counts().to_dict() == {"succeeded": 150}, (
        results.loc[results["status"] != "succeeded", "error"].value_counts().head(3).to_dict()
    )
    billed = _tasks_by_image([api.data_dir / "tasks.sqlite3"])
    assert len(billed) == 120
    assert max(billed.values()) == 1, f"{killed_at} tasks when killed"


def _created(data_dir: Path) -> int:
    try:
        with sqlite3.connect(data_dir / "tasks.sqlite3") as db:
            return db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_configuration_every_shard_would_refuse_is_one_message(
    cluster: Cluster, start_service: Any
) -> None:
    """A token from the environment with another --api-url: shards (a deployment's runs) would
    each refuse to send it. Said once, exit 2, before any shard starts; so is a shard
    deployment that does not exist."""
    api = start_service("--allow-private-urls")
    manifest = _upload_catalog("config", list(range(6)))
    before = len(cluster.prefect.call(_shard_runs))
    token = {"HIDREAM_API_TOKEN": "t0ken-of-the-parent"}
    refused = cluster.convert(manifest, "s3://config/out", "--api-url", api.url, env=token)
    missing = cluster.convert(manifest, "s3://config/out", "--api-url", api.url,
                              "--shard-deployment", "img2svg-shard/nope")  # fmt: skip
    for done in (refused, missing):
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stdout + done.stderr
    assert "the shards run as a deployment's runs on workers" in refused.stderr
    assert "t0ken-of-the-parent" not in refused.stdout + refused.stderr
    assert "no deployment 'img2svg-shard/nope'" in " ".join(missing.stderr.split())
    assert len(cluster.prefect.call(_shard_runs)) == before  # no shard was started


def test_the_first_shard_refusing_the_token_cancels_the_others(
    cluster: Cluster, start_service: Any
) -> None:
    """The parent's environment binds its token to the API, the workers' does not: the first
    shard to refuse cancels the others, and the run ends with that one message, exit 2."""
    api = start_service("--allow-private-urls", "--latency", "1")
    for name in list(cluster.workers):
        kill_machine(cluster.workers.pop(name))
    cluster.workers["w3"] = cluster.prefect.spawn(
        "worker-w3", "worker", "start", "--pool", POOL, "--type", "process", "--name", "w3",
        "--limit", "4",
        env={"IMG2SVG_STATE_DIR": str(cluster.state_dir("w3")), "HIDREAM_API_TOKEN": "t0k"},
    )  # fmt: skip
    manifest = _upload_catalog("refuse", list(range(8)))
    bound = {"HIDREAM_API_TOKEN": "t0k", "HIDREAM_API_URL": api.url}
    done = cluster.convert(manifest, "s3://refuse/out", "--api-url", api.url, env=bound)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "refusing to send $HIDREAM_API_TOKEN" in " ".join(done.stderr.split())
    assert "t0k" not in done.stdout + done.stderr
    runs = cluster.prefect.call(_shard_runs)
    assert runs and not [r.name for r in runs if r.state and not r.state.is_final()]
