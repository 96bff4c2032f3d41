"""The batch functions against the real service: a retried batch never pays twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from img2svg.client import Throttle
from img2svg.convert.jobs import Clock, Poller, make_client, submit_jobs
from img2svg.run.jobs import Job
from img2svg.run.rows import RowState, RowStatus
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stage.images import classify
from img2svg.stores.ledger import Ledger, State
from img2svg.stores.outputs import OutputStore
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


def test_a_submission_that_fails_before_its_post_leaves_records_nothing(
    start_service, tmp_path: Path
) -> None:
    """A wait that fails (here the shared rate-limit gate) leaves no `submitting` behind."""
    service = start_service("--no-idempotency")
    endpoint = Endpoint(url=service.url, identity=service.url)
    jobs = _jobs(tmp_path, 2)

    async def broken_gate() -> None:
        raise RuntimeError("Prefect API unreachable")

    async def run() -> None:
        with Ledger(tmp_path / "ledger.sqlite3") as ledger:
            await submit_jobs(
                jobs,
                endpoint=endpoint,
                settings=RunSettings(),
                throttle=Throttle(gate=broken_gate),
                ledger=ledger,
            )
            assert ledger.submissions([j.key for j in jobs]) == {}

    asyncio.run(run())
    assert [j.lead.status for j in jobs] == [RowStatus.ERROR] * 2
    with httpx.Client(base_url=service.url) as api:
        assert metric(api, "img2svg_submit_requests_total") == 0


def test_a_retried_batch_never_resends_a_key_that_left(start_service, tmp_path: Path) -> None:
    """The first attempt of the batch sent its POST and died before recording the answer."""
    service = start_service("--no-idempotency")
    endpoint = Endpoint(url=service.url, identity=service.url)
    (job,) = _jobs(tmp_path, 1)

    async def run() -> None:
        with Ledger(tmp_path / "ledger.sqlite3") as ledger:
            ledger.claim(
                job.key,
                fingerprint=job.fingerprint,
                mode="fast",
                backend=endpoint.identity,
                idem_key=job.idem_key,
                token_id=endpoint.token_id,
                resend_ok=False,
            )
            await submit_jobs(
                [job], endpoint=endpoint, settings=RunSettings(), throttle=Throttle(), ledger=ledger
            )

    asyncio.run(run())
    assert job.lead.status is RowStatus.UNCONFIRMED
    assert "--resubmit-unconfirmed" in (job.lead.error or "")
    with httpx.Client(base_url=service.url) as api:
        assert metric(api, "img2svg_submit_requests_total") == 0


def test_unknown_tasks_are_lost_only_to_their_own_token_and_after_several_polls(
    start_service, tmp_path: Path
) -> None:
    """A rotated token does not see the old token's tasks on our service: never lost."""
    service = start_service("--token", "old", "--token", "new")
    settings = RunSettings(poll_interval_s=0.1, poll_timeout_s=3, lost_min_age_s=0)
    old = Endpoint(url=service.url, token="old", identity=service.url)
    new = Endpoint(url=service.url, token="new", identity=service.url)
    rotated, stray = _jobs(tmp_path, 2)
    outputs = OutputStore(str(tmp_path / "out"))

    async def run() -> None:
        with Ledger(tmp_path / "ledger.sqlite3") as ledger:
            kwargs = {"settings": settings, "throttle": Throttle(), "ledger": ledger}
            await submit_jobs([rotated], endpoint=old, **kwargs)
            # A task id the service never issued, submitted (as far as the ledger says) by the
            # current token: the service's "no such task" is then taken for lost.
            stray.lead.status, stray.lead.task_id = RowStatus.SUBMITTED, "no-such-task"
            stray.lead.submitted_at, stray.token_id = 0.0, new.token_id
            await poll_jobs([rotated, stray], endpoint=new, outputs=outputs, **kwargs)
            assert ledger.submission(rotated.key).state == State.SUBMITTED  # kept, unpaid

    asyncio.run(run())
    assert rotated.lead.status is RowStatus.TIMED_OUT
    assert "not the one that submitted it" in (rotated.lead.error or "")
    assert stray.lead.status is RowStatus.ERROR
    assert "does not know task no-such-task (said so on 3 polls" in (stray.lead.error or "")
    with httpx.Client(base_url=service.url) as api:
        assert metric(api, "img2svg_tasks_created_total") == 1


def test_polls_are_timed_by_how_long_tasks_take(tmp_path: Path) -> None:
    """Due when a task reaches the typical duration (more in tests/stages/test_poll_schedule.py)."""
    from img2svg.convert.jobs import Poller

    now = [100.0]
    settings = RunSettings(poll_interval_s=1.0, poll_min_interval_s=0.1)
    endpoint = Endpoint(url="http://127.0.0.1:9")
    poller = Poller(
        None, endpoint, settings, Throttle(), OutputStore(str(tmp_path)), None, clock=lambda: now[0]
    )
    (job,) = _jobs(tmp_path, 1)
    job.lead.status, job.lead.task_id, job.lead.submitted_at = RowStatus.SUBMITTED, "t1", 100.0
    poller.add([job])
    assert poller.next_wait() == pytest.approx(0.1)  # nothing learned yet: soon, then less so
    poller.typical_s = 2.0
    now[0] = 101.5
    assert poller.next_wait() == pytest.approx(0.5)  # due at 102.0
    now[0] = 102.5
    assert poller.next_wait() == 0.0  # overdue and not asked about since: at once
    poller.typical_s = 60.0
    assert poller.next_wait() == 1.0  # a slow API is still polled at least every second


async def poll_jobs(  # the production loop is convert.chunks.poll_open_jobs, over a workspace
    jobs: list[Job],
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    outputs: OutputStore,
    ledger: Ledger,
    clock: Clock = time.time,
) -> list[Job]:
    """Poll every submitted job until it is terminal or past its deadline: the Poller alone,
    without a workspace."""
    async with make_client(endpoint, settings, throttle) as client:
        poller = Poller(client, endpoint, settings, throttle, outputs, ledger, clock=clock)
        poller.add(jobs)
        while poller.pending:
            await poller.round()
            if poller.pending:
                await asyncio.sleep(poller.next_wait())
        await poller.finish()
    return jobs
