"""The work of one chunk of a run, in plain async Python, between the workspace and the API.

Each function takes the workspace and a chunk number (what a Prefect task is given), loads
that chunk's jobs as `Job` objects, does its step and writes the outcomes back, so memory
holds one chunk at a time whatever the catalog's size. The submit and poll steps of a chunk
run side by side and meet only in the workspace and the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import time
from typing import Any

import httpx

from img2svg.client import Throttle
from img2svg.pipeline.batch import Poller, make_client, submit_jobs
from img2svg.pipeline.identify import FingerprintMode, identify_rows
from img2svg.pipeline.images import (
    ImageRef,
    LocalPaths,
    source_bytes,
)
from img2svg.pipeline.ledger import Ledger
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Job, PlanOptions, intact_copy, plan_chunk
from img2svg.pipeline.quality import save_thumbnails, scores_json
from img2svg.pipeline.rows import RowFlag, RowState, RowStatus, join_flags, split_flags
from img2svg.pipeline.settings import Endpoint, RunSettings
from img2svg.pipeline.workspace import Workspace
from img2svg.quality import ScoreError, Scorer, ScoreRefused, flags_for

log = logging.getLogger("img2svg.pipeline")


async def identify_and_plan(
    workspace: Workspace,
    chunk: int,
    *,
    ledger: Ledger,
    outputs: OutputStore,
    settings: RunSettings,
    options: PlanOptions,
    fingerprint: FingerprintMode,
) -> None:
    rows = workspace.chunk_rows(chunk)
    base = workspace.meta("base") or "."
    identified = await identify_rows(rows, base, settings, ledger=ledger, mode=fingerprint)
    plan_chunk(
        chunk,
        rows,
        identified,
        workspace=workspace,
        ledger=ledger,
        outputs=outputs,
        options=options,
    )


async def submit_chunk(
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
    workspace.mark_submitted(chunk)
    return sum(job.lead.status is RowStatus.SUBMITTED for job in jobs)


async def poll_chunk(
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
    async with make_client(endpoint, settings, throttle) as client:
        poller = Poller(client, endpoint, settings, throttle, outputs, ledger, on_final=final)
        while True:
            all_sent = workspace.submit_done(chunk)  # read before the jobs: nothing is missed
            fresh = [r for r in workspace.jobs(chunk, "submitted") if r["key"] not in watched]
            watched.update(r["key"] for r in fresh)
            poller.add([job_of(row, settings.mode) for row in fresh])
            if poller.pending:
                await poller.round()
            elif all_sent:
                break
            await asyncio.sleep(poller.next_wait() if poller.pending else 0.1)
        await poller.finish()


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


def job_of(row: sqlite3.Row, mode: str) -> Job:
    lead = RowState(
        index=row["lead_idx"],
        row_id=row["lead_row_id"],
        image=row["image"],
        mode=mode,
        status=RowStatus(row["status"]),
        task_id=row["task_id"],
        sub_task_id=row["sub_task_id"],
        svg_url=row["svg_url"],
        svg_bytes=row["svg_bytes"],
        error=row["error"],
        attempts=row["attempts"] or 0,
        submitted_at=row["submitted_at"],
        finished_at=row["finished_at"],
        reused=bool(row["reused"]),
        flags=split_flags(row["flags"]),
    )
    ref = ImageRef(row["ref_kind"], row["ref_location"])
    return Job(
        row["key"],
        row["fingerprint"],
        ref,
        row["idem_key"],
        lead,
        token_id=row["token_id"],
        svg_sha256=row["svg_sha256"],
    )


def outcome(job: Job) -> dict[str, Any]:
    state = job.lead
    return {
        "status": str(state.status),
        "error": state.error,
        "task_id": state.task_id,
        "sub_task_id": state.sub_task_id,
        "svg_url": state.svg_url,
        "svg_bytes": state.svg_bytes,
        "svg_sha256": job.svg_sha256,
        "attempts": state.attempts,
        "submitted_at": state.submitted_at,
        "finished_at": state.finished_at,
        "reused": int(state.reused),
        "idem_key": job.idem_key,
        "token_id": job.token_id,
        "flags": join_flags(state.flags),
    }


async def score_chunk(
    workspace: Workspace,
    chunk: int,
    *,
    settings: RunSettings,
    outputs: OutputStore,
    ledger: Ledger,
    scorer: Scorer,
    poll_every_s: float = 0.25,
) -> int:
    """Score the chunk's SVGs as they arrive, beside its submit and poll steps, until every job
    of the chunk is final and scored; returns how many were scored.

    The scores go to the workspace (the results), the ledger (a rerun that reuses the SVG
    reuses them) and two small thumbnails to `<out>/.img2svg/thumbs/` (the HTML report). A row
    that cannot be scored keeps its success, flagged `unscored`."""
    local = LocalPaths(workspace.meta("base") or ".", settings.allow_local_paths)
    gate = asyncio.Semaphore(scorer.workers * 2)  # sources read ahead of the workers, bounded
    scored = 0

    async def one(job: sqlite3.Row) -> tuple[str, dict[str, Any]]:
        async with gate:
            return await _score_one(job, http, local, settings, outputs, ledger, scorer)

    async with httpx.AsyncClient(timeout=settings.fetch_timeout_s) as http:
        while True:
            settled = workspace.open_jobs(chunk) == 0  # read before the jobs: none is missed
            jobs = workspace.jobs_to_score(chunk)
            if jobs:
                outcomes = await asyncio.gather(*(one(job) for job in jobs))
                workspace.save_outcomes(outcomes)
                scored += len(outcomes)
            elif settled:
                return scored
            else:
                await asyncio.sleep(poll_every_s)


async def _score_one(
    job: sqlite3.Row,
    http: httpx.AsyncClient,
    local: LocalPaths,
    settings: RunSettings,
    outputs: OutputStore,
    ledger: Ledger,
    scorer: Scorer,
) -> tuple[str, dict[str, Any]]:
    flags = split_flags(job["flags"])
    try:
        svg = await asyncio.to_thread(_the_svg, job, outputs, ledger)
        source = await source_bytes(
            ImageRef(job["ref_kind"], job["ref_location"]),
            http=http,
            max_bytes=settings.max_image_bytes,
            fetch_timeout_s=settings.fetch_timeout_s,
            local=local,
        )
        quality = await scorer.score(source, svg)  # the scorer bounds how many run at once
        await asyncio.to_thread(save_thumbnails, outputs, job["key"], quality)
        scores = scores_json(quality)
        flags += flags_for(quality)
        await asyncio.to_thread(ledger.scored, job["key"], scores, join_flags(flags))
    except Exception as exc:  # a score is a courtesy: never the row's success, never the run
        reason = exc.reason if isinstance(exc, ScoreError) else f"{type(exc).__name__}: {exc}"
        log.warning("not scored: %s: %s", job["lead_row_id"], reason)
        flags.append(str(RowFlag.UNSCORED))
        return job["key"], {"flags": join_flags(flags), "quality": "{}"}
    return job["key"], {"flags": join_flags(flags), "quality": scores}


def _the_svg(job: sqlite3.Row, outputs: OutputStore, ledger: Ledger) -> bytes:
    """The job's SVG as recorded (its SHA-256): the lead row's file when this run wrote it; for
    an SVG reused from an earlier run, an intact copy wherever the ledger knows one (the lead
    row's own file is written only at the end, and may still hold another image's SVG)."""
    expected = job["svg_sha256"]
    data = outputs.read_bytes(f"svgs/{job['lead_row_id']}.svg")
    if data is not None and (not expected or hashlib.sha256(data).hexdigest() == expected):
        return data
    past = ledger.submission(job["key"])
    copy = intact_copy(past, ledger, outputs) if past is not None else None
    found = outputs.read_bytes(copy[0]) if copy is not None else None
    if found is None:
        raise ScoreRefused("no intact copy of the SVG is left in the output")
    return found
