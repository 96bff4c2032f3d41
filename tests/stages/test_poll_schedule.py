"""When the Poller asks about tasks: a simulated API and clock, so no time passes for real.

A task's end is noticed within a small share of what tasks take (the run's window slot is
handed back that moment), tasks taking minutes are not polled more than once a second, a task
that runs on is asked about less and less often, a slow API is not asked faster than it
answers, and resumed tasks are asked about at once without teaching anything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import pytest

from img2svg.client import TaskView, Throttle, Verdict
from img2svg.convert.jobs import Poller
from img2svg.run.jobs import ImageRef, Job
from img2svg.run.rows import RowState, RowStatus
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stores.outputs import OutputStore

SETTINGS = RunSettings(poll_interval_s=1.0, poll_min_interval_s=0.1, poll_timeout_s=10_000)


@dataclass
class FakeApi:
    """Tasks that end at set times on a fake clock; every batch poll is recorded. An ended task
    answers `failed`, so no SVG is downloaded (any end teaches the Poller a duration)."""

    now: float = 1000.0
    answer_s: float = 0.0  # how long a poll takes to be answered
    ends: dict[str, float] = field(default_factory=dict)
    polls: list[tuple[float, int]] = field(default_factory=list)  # (sent at, tasks asked)

    def clock(self) -> float:
        return self.now

    async def results(self, task_ids: list[str]) -> list[TaskView]:
        self.polls.append((self.now, len(task_ids)))
        self.now += self.answer_s
        return [
            TaskView(t, Verdict.FAILED, reason="ended")
            if self.now >= self.ends[t]
            else TaskView(t, Verdict.PENDING)
            for t in task_ids
        ]


class Ledger:
    def finished(self, key: str, state: object, error: str | None) -> None:
        pass


@dataclass
class Run:
    api: FakeApi
    poller: Poller
    throttle: Throttle
    jobs: dict[str, Job] = field(default_factory=dict)

    async def submit(self, task_id: str, takes_s: float, *, resumed_at: float | None = None):
        """A task created now (or, `resumed_at`, by an earlier run), holding a window slot."""
        key = f"key-{task_id}"
        await self.throttle.window.acquire(key)
        self.throttle.window.confirm(key)
        lead = RowState(index=len(self.jobs), row_id=task_id, image="x.png", mode="fast")
        lead.status, lead.task_id = RowStatus.SUBMITTED, task_id
        lead.submitted_at = self.api.now if resumed_at is None else resumed_at
        job = Job(key, f"fp-{task_id}", ImageRef("path", "x.png"), f"idem-{task_id}", lead)
        self.jobs[task_id] = job
        self.api.ends[task_id] = lead.submitted_at + takes_s
        self.poller.add([job], resumed=resumed_at is not None)

    async def poll_if_due(self) -> list[Job]:
        """A turn of the poll loop (as `poll_open_jobs` runs it): a poll if one is due.
        Returns the jobs whose end it noticed."""
        before = set(self.poller.pending)
        if self.poller.next_wait() <= 0.005:
            await self.poller.round()
        return [self.jobs[t] for t in before - set(self.poller.pending)]

    def sleep(self) -> None:
        """The poll loop's sleep, until the next poll is due or the next look for new tasks."""
        self.api.now += min(self.poller.next_wait(), 0.1)

    async def step(self) -> None:
        await self.poll_if_due()
        self.sleep()


def make_run(tmp_path: Path, window: int | None = 10, **api: float) -> Run:
    fake = FakeApi(**api)
    throttle = Throttle(max_in_flight=window)
    poller = Poller(
        fake,  # type: ignore[arg-type]
        Endpoint(url="http://127.0.0.1:9"),
        SETTINGS,
        throttle,
        OutputStore(str(tmp_path)),
        Ledger(),  # type: ignore[arg-type]
        clock=fake.clock,
    )
    return Run(fake, poller, throttle)


async def keep_window_full(run: Run, tasks: int, takes_s: float) -> list[float]:
    """Ten tasks in flight; a new one leaves the moment an end is noticed (its slot handed
    back). Returns how late each end was noticed, in submission order."""
    sent = 0
    while sent < 10:
        await run.submit(f"t{sent}", takes_s)
        sent += 1
    while run.poller.pending:
        for job in await run.poll_if_due():
            assert job.key not in run.throttle.window._holders  # the slot is back already
            if sent < tasks:
                await run.submit(f"t{sent}", takes_s)
                sent += 1
        run.sleep()
    return [
        job.lead.finished_at - run.api.ends[task_id]  # type: ignore[operator]
        for task_id, job in run.jobs.items()
    ]


def test_an_end_is_noticed_within_a_small_share_of_what_tasks_take(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    late = asyncio.run(keep_window_full(run, 200, 2.0))
    first, rest = late[:10], late[10:]
    assert max(first) <= 0.25 * 2.0 + 0.1  # before any end: asked at a quarter of their age
    assert max(rest) <= 0.1 + 1e-9  # then within the floor (a twentieth of 2 s)
    assert sum(rest) / len(rest) <= 0.08
    assert run.poller.typical_s == pytest.approx(2.0, abs=0.1)  # not drifting up with lateness
    sent = [at for at, _ in run.api.polls]
    assert min(b - a for a, b in pairwise(sent)) >= 0.1 - 1e-9


def test_tasks_of_minutes_are_polled_at_most_once_a_second(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    late = asyncio.run(keep_window_full(run, 40, 180.0))
    assert max(late) <= 0.25 * 180  # the first ones, before any end was seen
    assert max(late[10:]) <= 1.0 + 1e-9
    sent = [at for at, _ in run.api.polls]
    learned = [at for at in sent if at >= 1000.0 + 180]  # once the first ends were seen
    gaps = [b - a for a, b in pairwise(learned)]
    assert min(gaps) >= 1.0 - 1e-9  # the floor grows with the duration, up to the ceiling
    assert len(sent) <= (sent[-1] - sent[0]) / 1.0 + 20


def test_a_task_that_runs_on_is_asked_about_less_and_less_often(tmp_path: Path) -> None:
    run = make_run(tmp_path)

    async def scenario() -> None:
        for i in range(5):
            await run.submit(f"quick{i}", 2.0)
        while run.poller.pending:
            await run.step()
        assert run.poller.typical_s == pytest.approx(2.0, abs=0.15)
        await run.submit("stuck", 10_000.0)
        start = run.api.now
        while run.api.now < start + 300:
            await run.step()

    asyncio.run(scenario())
    late = [at for at, _ in run.api.polls if at >= run.api.now - 100]
    assert 95 <= len(late) <= 101  # a poll a second, not ten, once it has run on for a while
    early = [at for at, _ in run.api.polls if run.api.now - 300 <= at < run.api.now - 295]
    assert len(early) >= 10  # right after it was due, it was asked about often


def test_a_slow_api_is_not_asked_faster_than_it_answers(tmp_path: Path) -> None:
    run = make_run(tmp_path, answer_s=0.4)
    asyncio.run(keep_window_full(run, 50, 2.0))
    sent = [at for at, _ in run.api.polls]
    assert min(b - a for a, b in pairwise(sent)) >= 0.8 - 1e-9


def test_resumed_tasks_are_asked_about_at_once_and_teach_nothing(tmp_path: Path) -> None:
    run = make_run(tmp_path)

    async def scenario() -> None:
        await run.submit("old", 5.0, resumed_at=run.api.now - 3600)
        assert run.poller.next_wait() == 0.0
        await run.step()

    asyncio.run(scenario())
    assert not run.poller.pending
    assert run.poller.typical_s is None
    assert run.throttle.window.in_flight == 0


def test_polls_ask_about_due_tasks_first_in_whole_batches(tmp_path: Path) -> None:
    run = make_run(tmp_path, window=None)

    async def scenario() -> None:
        run.poller.typical_s = 10.0
        for i in range(150):  # not yet due
            await run.submit(f"new{i}", 10.0)
        for i in range(30):  # due now
            await run.submit(f"old{i}", 5.0, resumed_at=run.api.now - 60)
        await run.poller.round()

    asyncio.run(scenario())
    assert run.api.polls == [(1000.0, 100)]  # one request: the 30 due, then 70 of the others
    assert not any(t.startswith("old") for t in run.poller.pending)
