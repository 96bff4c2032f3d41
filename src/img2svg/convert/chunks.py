"""The work of one chunk of a run, in plain async Python, between the workspace and the API.

Each function takes the workspace and a chunk number (what a Prefect task is given), loads
that chunk's jobs as `Job` objects, does its step and writes the outcomes back, so memory
holds one chunk at a time whatever the catalog's size. The submit and poll steps of a chunk
run side by side and meet only in the workspace and the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from img2svg.client import Throttle
from img2svg.convert.callbacks import CallbackWait
from img2svg.convert.jobs import Poller, make_client, submit_jobs
from img2svg.fsutil import NoSpaceLeft, no_space_as
from img2svg.run.jobs import Job, JobRecord, changes
from img2svg.run.rows import RowState, RowStatus, join_flags, split_flags
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stage.images import (
    ImageRef,
)
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace

log = logging.getLogger(__name__)


async def submit_new_jobs(
    workspace: Workspace,
    chunk: int,
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    ledger: Ledger,
) -> int:
    """Submit the chunk's new jobs; each outcome reaches the workspace as soon as it is known,
    where the chunk's poller picks the submitted ones up. Returns how many were sent."""
    jobs = [job_of(row, settings.mode) for row in workspace.jobs(chunk, "pending", action="submit")]

    def done(job: Job) -> None:
        with full_disk_stops(workspace, throttle):
            workspace.save_outcomes([(job.key, outcome(job))])

    await submit_jobs(
        jobs,
        endpoint=endpoint,
        settings=settings,
        throttle=throttle,
        ledger=ledger,
        on_done=done,
    )
    # Only now: a failed attempt is retried, and its poller must wait for what the retry sends
    # (a submit task that fails for good is closed by the flow: `close_unsent`).
    with full_disk_stops(workspace, throttle):
        workspace.mark_submitted(chunk)
    return sum(job.lead.status is RowStatus.SUBMITTED for job in jobs)


async def poll_open_jobs(
    workspace: Workspace,
    chunk: int,
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    outputs: OutputStore,
    ledger: Ledger,
) -> None:
    """Poll the chunk's tasks (resumed ones, and new ones as they are submitted) until every one
    is final and the chunk's submissions are all sent."""

    def final(job: Job) -> None:
        workspace.save_outcomes([(job.key, outcome(job))])

    watched: set[str] = set()
    callbacks = CallbackWait(ledger, settings.callback_grace_s)
    async with make_client(endpoint, settings, throttle) as client:
        poller = Poller(client, endpoint, settings, throttle, outputs, ledger, on_final=final)
        settled, looked = False, -math.inf  # settled: all sent and picked up, none waiting
        while not throttle.abandoned:  # else the run stops: its open tasks stay in the ledger
            if poller.stopped is not None:  # nothing can be recorded: see full_disk_stops
                with full_disk_stops(workspace, throttle):
                    raise poller.stopped
            if not settled and time.monotonic() >= looked + _pick_up_s(poller, settings):
                looked = time.monotonic()
                all_sent = workspace.submit_done(chunk)  # read before the jobs: none missed
                submitted = workspace.jobs(chunk, "submitted")
                fresh = [r for r in submitted if r.task_id and r.key not in watched]
                waiting = [r for r in submitted if not r.task_id]  # answer lost: CallbackWait
                watched.update(r.key for r in fresh)
                poller.add([job_of(row, settings.mode) for row in fresh if row.action != "poll"])
                resumed = [job_of(row, settings.mode) for row in fresh if row.action == "poll"]
                poller.add(resumed, resumed=True)  # submitted by an earlier run
                if waiting:
                    moved = await asyncio.to_thread(callbacks.check, waiting)
                    with full_disk_stops(workspace, throttle):
                        workspace.save_outcomes(moved)
                settled = all_sent and not waiting
            if poller.pending and poller.next_wait() <= _EARLY_S:  # when tasks are due
                await poller.round()
            if settled and not poller.pending:
                break
            # Back when the next poll is due, or to look for new submissions.
            wake = poller.next_wait()
            if not settled:
                wake = min(wake, max(0.0, looked + _pick_up_s(poller, settings) - time.monotonic()))
            await asyncio.sleep(wake)
        await poller.finish()


@contextmanager
def full_disk_stops(workspace: Workspace, throttle: Throttle) -> Iterator[None]:
    """A workspace that cannot be written (its disk is full) stops the run: nothing more is
    submitted, pollers stop, and the error says where (`NoSpaceLeft`)."""
    try:
        with no_space_as(str(workspace.path.parent)):
            yield
    except NoSpaceLeft as stop:
        throttle.abandon(str(stop))
        raise


def _pick_up_s(poller: Poller, settings: RunSettings) -> float:
    """How often the poll loop reads the workspace for tasks just submitted: soon enough that
    none is first asked about later than it is due (a quarter of what tasks take), and no more
    often than `_PICK_UP_S` (each read goes over the chunk's submitted jobs)."""
    typical = poller.typical_s or 0.0
    return min(settings.poll_interval_s, max(_PICK_UP_S, typical / 4))


# The poll loop's shortest look for new submissions, and how early a due poll may leave.
_PICK_UP_S = 0.1
_EARLY_S = 0.005


def close_chunk(workspace: Workspace, chunk: int, reason: str, throttle: Throttle) -> None:
    """A chunk's task died after its retries: its open jobs end as errors and give back their
    window slots (their ledger entries stand: the next run polls or holds them)."""
    for key in workspace.fail_open_jobs(chunk, reason, time.time()):
        throttle.window.release(key, finished=False)
    workspace.mark_submitted(chunk)


def close_unsent(workspace: Workspace, chunk: int, reason: str) -> None:
    """A chunk's submit task died after its retries: rows never sent end as errors (nothing was
    paid for them), and the chunk counts as sent, so its poller ends with the sent ones."""
    workspace.fail_unsent_jobs(chunk, reason, time.time())
    workspace.mark_submitted(chunk)


def job_of(record: JobRecord, mode: str) -> Job:
    """The workspace's record as the job the submit and poll steps move along."""
    lead = RowState(
        index=record.lead_idx,
        row_id=record.lead_row_id,
        image=record.image,
        mode=mode,
        status=RowStatus(record.status),
        task_id=record.task_id,
        sub_task_id=record.sub_task_id,
        svg_url=record.svg_url,
        svg_bytes=record.svg_bytes,
        error=record.error,
        attempts=record.attempts or 0,
        submitted_at=record.submitted_at,
        finished_at=record.finished_at,
        reused=bool(record.reused),
        flags=split_flags(record.flags),
    )
    ref = ImageRef(record.ref_kind, record.ref_location)
    return Job(
        record.key,
        record.fingerprint,
        ref,
        record.idem_key,
        lead,
        token_id=record.token_id,
        svg_sha256=record.svg_sha256,
    )


def outcome(job: Job) -> dict[str, Any]:
    """What the job's steps changed, as its record's columns."""
    state = job.lead
    return changes(
        status=str(state.status),
        error=state.error,
        task_id=state.task_id,
        sub_task_id=state.sub_task_id,
        svg_url=state.svg_url,
        svg_bytes=state.svg_bytes,
        svg_sha256=job.svg_sha256,
        attempts=state.attempts,
        submitted_at=state.submitted_at,
        finished_at=state.finished_at,
        reused=int(state.reused),
        idem_key=job.idem_key,
        token_id=job.token_id,
        flags=join_flags(state.flags),
    )
