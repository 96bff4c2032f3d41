"""The work of one batch of jobs, in plain async Python: submit, then poll and download.

The Prefect tasks in `tasks/` are thin wrappers around these two functions. Every outcome,
good or bad, is written into the row's state; nothing here raises for a bad row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import httpx

from img2svg.client import (
    AsyncImg2SvgClient,
    Img2SvgError,
    RefusedError,
    TaskResult,
    TaskStatus,
    Throttle,
    Unauthorized,
)
from img2svg.pipeline.images import ImageUnavailable, InvalidImageRef, prepare
from img2svg.pipeline.ledger import Ledger, State
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Job
from img2svg.pipeline.rows import RowState, RowStatus
from img2svg.pipeline.settings import Endpoint, RunSettings
from img2svg.pipeline.svgcheck import InvalidSvg, check_svg

log = logging.getLogger("img2svg.pipeline")

Clock = Callable[[], float]


def make_client(
    endpoint: Endpoint, settings: RunSettings, throttle: Throttle
) -> AsyncImg2SvgClient:
    return AsyncImg2SvgClient(
        endpoint.url,
        endpoint.token,
        timeout_s=settings.request_timeout_s,
        max_connections=max(4, settings.concurrency),
        throttle=throttle,
        honours_idempotency_keys=endpoint.idempotent,
    )


async def submit_jobs(
    jobs: Sequence[Job],
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    ledger: Ledger,
    clock: Clock = time.time,
) -> list[Job]:
    """Submit each job once, recording the intent before the POST and the task id after it."""
    # Bounds how many images of this batch are read into memory and sent at once.
    gate = asyncio.Semaphore(settings.concurrency)
    async with (
        make_client(endpoint, settings, throttle) as client,
        httpx.AsyncClient(timeout=settings.fetch_timeout_s) as http,
    ):

        async def submit_one(job: Job) -> None:
            if job.lead.status is not RowStatus.PENDING:
                return  # a retry of this batch: submitted or settled by the first attempt
            async with gate:
                try:
                    await _submit_one(job)
                except Exception as exc:  # a bug or a broken disk must not cost the batch
                    log.exception("submitting %s failed", job.lead.row_id)
                    # The ledger keeps `submitting` if the POST may have left: the next run
                    # resends it with the same idempotency key.
                    job.lead.finish(
                        RowStatus.ERROR, clock(), f"submission failed unexpectedly: {exc!r}"
                    )

        async def _submit_one(job: Job) -> None:
            state = job.lead
            if throttle.halted:
                state.finish(RowStatus.ERROR, clock(), f"not submitted: {throttle.halted}")
                return
            try:
                payload = await prepare(
                    job.ref,
                    http=http,
                    max_bytes=settings.max_image_bytes,
                    fetch_timeout_s=settings.fetch_timeout_s,
                )
            except InvalidImageRef as exc:
                state.finish(RowStatus.INVALID, clock(), str(exc))
                return
            except ImageUnavailable as exc:
                state.finish(RowStatus.ERROR, clock(), str(exc))
                return
            await asyncio.to_thread(
                ledger.begin,
                job.key,
                fingerprint=job.fingerprint,
                mode=settings.mode,
                backend=endpoint.identity,
                idem_key=job.idem_key,
            )
            try:
                submitted = await client.submit(
                    payload.image, settings.mode, idempotency_key=job.idem_key
                )
            except Img2SvgError as exc:
                state.attempts = exc.attempts
                await _record_submit_error(job, exc, clock(), throttle, ledger)
                return
            sub_task_id = submitted.sub_task_ids[0] if submitted.sub_task_ids else None
            await asyncio.to_thread(
                ledger.submitted, job.key, submitted.task_id, sub_task_id, submitted.attempts
            )
            state.attempts = submitted.attempts
            state.status = RowStatus.SUBMITTED
            state.task_id = submitted.task_id
            state.sub_task_id = sub_task_id
            state.submitted_at = clock()

        await asyncio.gather(*(submit_one(job) for job in jobs))
    return list(jobs)


async def _record_submit_error(
    job: Job, exc: Img2SvgError, now: float, throttle: Throttle, ledger: Ledger
) -> None:
    state = job.lead
    if isinstance(exc, Unauthorized):
        if not throttle.halted:
            log.error("the API refused the token (%s): %s", exc, AUTH_HELP)
        throttle.halt(f"the API refused the token ({exc}): {AUTH_HELP}")
        state.finish(RowStatus.ERROR, now, f"{exc}: {AUTH_HELP}")
    elif isinstance(exc, RefusedError):
        state.finish(RowStatus.ERROR, now, f"refused: {exc}")
    else:
        state.finish(RowStatus.ERROR, now, f"unreachable after {exc.attempts} attempts: {exc}")
    if not exc.reached_server:
        # No attempt can have created a task (refused, or never connected): the next run
        # submits afresh. Otherwise the ledger keeps `submitting`, and the next run resends it
        # with the same idempotency key, or, where resending could bill twice, holds it back.
        await asyncio.to_thread(ledger.finished, job.key, State.REFUSED, state.error)


AUTH_HELP = (
    "the API refused the token (expired or revoked?): set a valid HIDREAM_API_TOKEN or update "
    "the Secret block, then run the same command again to resume"
)


async def poll_jobs(
    jobs: list[Job],
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    outputs: OutputStore,
    ledger: Ledger,
    clock: Clock = time.time,
) -> list[Job]:
    """Poll every submitted job until it is terminal or past its deadline.

    SVGs are downloaded the moment their task succeeds: result URLs are short-lived. A job
    still running at its deadline stays `submitted` in the ledger, so the next run polls it
    again instead of paying for it twice.
    """
    pending = {j.lead.task_id: j for j in jobs if j.lead.status is RowStatus.SUBMITTED}
    # A task resumed from an earlier run gets a full poll_timeout from now, not from then.
    started = clock()
    interval = settings.poll_interval_s
    last_error: str | None = None
    async with make_client(endpoint, settings, throttle) as client:
        downloads: list[asyncio.Task[None]] = []
        while pending:
            try:
                results = await client.results(list(pending))
                last_error = None
            except Unauthorized as exc:
                throttle.halt(f"the API refused the token ({exc}): {AUTH_HELP}")
                now = clock()
                for job in pending.values():
                    job.lead.finish(RowStatus.ERROR, now, f"polling refused, {exc}: {AUTH_HELP}")
                break
            except Img2SvgError as exc:
                results = []
                last_error = str(exc)
                log.warning("polling %d tasks failed: %s", len(pending), exc)
            now = clock()
            for result in results:
                job = pending.get(result.task_id)
                if job is None:
                    continue
                if _settle(job.lead, result, now):
                    del pending[result.task_id]
                    if job.lead.status is RowStatus.SUBMITTED:  # done; SVG to fetch
                        downloads.append(
                            asyncio.create_task(_download(client, job, outputs, ledger, clock))
                        )
                    else:
                        await _record_outcome(job, ledger, lost=not result.known)
            for task_id, job in list(pending.items()):
                state = job.lead
                deadline = max(state.submitted_at or started, started) + settings.poll_timeout_s
                if now >= deadline:
                    reason = f"not finished after {settings.poll_timeout_s:g} s"
                    if last_error:
                        reason += f" (last poll error: {last_error})"
                    state.finish(RowStatus.TIMED_OUT, now, reason + _RESUME_HINT)
                    del pending[task_id]
            if pending:
                await asyncio.sleep(interval)
                interval = min(interval * 1.5, settings.poll_max_interval_s)
        await asyncio.gather(*downloads)
    return jobs


_RESUME_HINT = "; the task is kept in the ledger and the next run polls it again, unpaid"


async def _record_outcome(job: Job, ledger: Ledger, *, lost: bool) -> None:
    """Remember a final answer that produced no SVG, so the next run knows what to do."""
    outcome = State.LOST if lost else _OUTCOMES.get(job.lead.status)
    if outcome is not None:
        await asyncio.to_thread(ledger.finished, job.key, outcome, job.lead.error)


_OUTCOMES = {RowStatus.FAILED: State.FAILED, RowStatus.REJECTED: State.REJECTED}


def _settle(state: RowState, result: TaskResult, now: float) -> bool:
    """Record a terminal result on the row; False while the task is still running."""
    if not result.known:
        state.finish(
            RowStatus.ERROR,
            now,
            f"the service does not know task {result.task_id}; the next run resubmits it",
        )
        return True
    if not result.sub_task_results:
        return False
    sub = result.sub_task_results[0]
    status = sub.status
    if status is None or not status.terminal:
        return False
    state.sub_task_id = sub.sub_task_id or state.sub_task_id
    if status is TaskStatus.DONE:
        if not sub.image:
            state.finish(RowStatus.ERROR, now, "task done but no SVG URL was returned")
        else:
            # Still `submitted` until the SVG is written: a retried batch fetches it again.
            state.svg_url = sub.image
            state.finished_at = now
        return True
    if status is TaskStatus.FAILED:
        state.finish(RowStatus.FAILED, now, sub.description or "conversion failed (task_status 3)")
    else:
        state.finish(
            RowStatus.REJECTED,
            now,
            sub.description or "rejected by content moderation (task_status 4)",
        )
    return True


async def _download(
    client: AsyncImg2SvgClient, job: Job, outputs: OutputStore, ledger: Ledger, clock: Clock
) -> None:
    """Fetch, check and write the SVG for every row of the job, then record it as done."""
    state = job.lead
    assert state.svg_url
    try:
        data = await client.download(state.svg_url)
        check_svg(data)
        digest = hashlib.sha256(data).hexdigest()
        written = []
        for row in [state, *job.followers]:
            await asyncio.to_thread(outputs.write_svg, row.row_id, data)
            written.append((row.row_id, job.key, f"svgs/{row.row_id}.svg", digest))
        await asyncio.to_thread(
            ledger.succeeded,
            job.key,
            svg_url=state.svg_url,
            svg_path=f"svgs/{state.row_id}.svg",
            svg_sha256=digest,
        )
        await asyncio.to_thread(ledger.record_rows, written)
        state.svg_path = outputs.svg_location(state.row_id)
        state.svg_bytes = len(data)
        state.finish(RowStatus.SUCCEEDED, state.finished_at or clock())
    except Img2SvgError as exc:
        # The task itself is done: the next run polls it for a fresh URL, unpaid.
        state.finish(RowStatus.ERROR, clock(), f"SVG download failed: {exc}")
    except InvalidSvg as exc:
        # Downloading the same output again would not help; the next run converts it anew.
        state.finish(RowStatus.ERROR, clock(), f"SVG check failed: {exc}")
        await asyncio.to_thread(ledger.finished, job.key, State.FAILED, state.error)
    except Exception as exc:  # a full disk, a broken fsspec backend, a ledger error
        log.exception("saving the SVG of %s failed", state.row_id)
        state.finish(RowStatus.ERROR, clock(), f"cannot save the SVG: {exc!r}")
