"""The batch functions against the real service: a retried batch never pays twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from img2svg.client import Throttle
from img2svg.pipeline.batch import poll_jobs, submit_jobs
from img2svg.pipeline.images import classify
from img2svg.pipeline.ledger import Ledger, State
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Job
from img2svg.pipeline.rows import RowState, RowStatus
from img2svg.pipeline.settings import Endpoint, RunSettings
from tests.helpers import logo_png, metric


def _jobs(tmp_path: Path, n: int) -> list[Job]:
    jobs = []
    for i in range(n):
        (tmp_path / f"{i}.png").write_bytes(logo_png(40, seed=300 + i))
        lead = RowState(index=i, row_id=f"r{i}", image=f"{i}.png", mode="fast")
        ref = classify(f"{i}.png", str(tmp_path))
        jobs.append(Job(f"key{i}", f"fp{i}", ref, f"idem{i}", lead))
    return jobs


def test_a_retried_batch_submits_nothing_twice_and_succeeds_only_once_written(
    start_service, tmp_path: Path
) -> None:
    service = start_service()
    endpoint = Endpoint(url=service.url, identity=service.url)
    settings = RunSettings(poll_interval_s=0.2)
    outputs = OutputStore(str(tmp_path / "out"))
    jobs = _jobs(tmp_path, 3)

    async def run() -> None:
        with Ledger(tmp_path / "ledger.sqlite3") as ledger:
            kwargs = {"endpoint": endpoint, "settings": settings, "throttle": Throttle()}
            await submit_jobs(jobs, ledger=ledger, **kwargs)
            assert [j.lead.status for j in jobs] == [RowStatus.SUBMITTED] * 3
            await submit_jobs(jobs, ledger=ledger, **kwargs)  # as a Prefect task retry would
            await poll_jobs(jobs, outputs=outputs, ledger=ledger, **kwargs)
            assert all(ledger.submission(j.key).state == State.SUCCEEDED for j in jobs)

    asyncio.run(run())
    with httpx.Client(base_url=service.url) as api:
        assert metric(api, "img2svg_submit_requests_total") == 3
        assert metric(api, "img2svg_tasks_created_total") == 3
    for job in jobs:
        assert job.lead.status is RowStatus.SUCCEEDED
        assert Path(job.lead.svg_path).read_bytes().startswith(b"<")
