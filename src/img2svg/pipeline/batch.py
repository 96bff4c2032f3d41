"""The work of one batch of rows, in plain async Python: submit, then poll and download.

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
from img2svg.pipeline.images import ImageUnavailable, InvalidImageRef, classify, prepare
from img2svg.pipeline.manifest import ManifestRow
from img2svg.pipeline.outputs import OutputStore
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
    )


def idempotency_key(row_id: str, fingerprint: str, mode: str) -> str:
    """Same row, same image, same mode: same key, so a retried POST cannot bill twice."""
    return hashlib.sha256(f"{row_id}\n{fingerprint}\n{mode}".encode()).hexdigest()


def initial_state(row: ManifestRow, mode: str) -> RowState:
    from img2svg.pipeline.images import describe

    state = RowState(index=row.index, row_id=row.row_id, image=describe(row.image), mode=mode)
    if row.invalid_reason:
        state.finish(RowStatus.INVALID, time.time(), row.invalid_reason)
    return state


async def submit_rows(
    rows: Sequence[ManifestRow],
    *,
    base: str,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    clock: Clock = time.time,
) -> list[RowState]:
    states = [initial_state(row, settings.mode) for row in rows]
    auth_failure = asyncio.Event()
    # Bounds how many images of this batch are read into memory and sent at once.
    gate = asyncio.Semaphore(settings.concurrency)
    async with (
        make_client(endpoint, settings, throttle) as client,
        httpx.AsyncClient(timeout=settings.fetch_timeout_s) as http,
    ):

        async def submit_one(row: ManifestRow, state: RowState) -> None:
            if state.status is not RowStatus.PENDING:
                return
            async with gate:
                await _submit_one(row, state)

        async def _submit_one(row: ManifestRow, state: RowState) -> None:
            try:
                ref = classify(row.image, base)
                payload = await prepare(
                    ref,
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
            state.extra["fingerprint"] = payload.fingerprint
            if auth_failure.is_set():
                state.finish(RowStatus.ERROR, clock(), _AUTH_HELP)
                return
            try:
                submitted = await client.submit(
                    payload.image,
                    settings.mode,
                    idempotency_key=idempotency_key(row.row_id, payload.fingerprint, settings.mode),
                )
            except Img2SvgError as exc:
                state.attempts = exc.attempts
                _record_submit_error(state, exc, clock(), auth_failure)
                return
            state.attempts = submitted.attempts
            state.status = RowStatus.SUBMITTED
            state.task_id = submitted.task_id
            state.sub_task_id = submitted.sub_task_ids[0] if submitted.sub_task_ids else None
            state.submitted_at = clock()

        await asyncio.gather(
            *(submit_one(row, state) for row, state in zip(rows, states, strict=True))
        )
    return states


def _record_submit_error(
    state: RowState, exc: Img2SvgError, now: float, auth_failure: asyncio.Event
) -> None:
    if isinstance(exc, Unauthorized):
        auth_failure.set()
        state.finish(RowStatus.ERROR, now, f"{exc}: {_AUTH_HELP}")
    elif isinstance(exc, RefusedError):
        state.finish(RowStatus.ERROR, now, f"refused: {exc}")
    else:
        state.finish(RowStatus.ERROR, now, f"unreachable after {exc.attempts} attempts: {exc}")


_AUTH_HELP = (
    "the API refused the token (expired or revoked?): set a valid HIDREAM_API_TOKEN or update "
    "the Secret block, then run the same command again to resume"
)


async def poll_rows(
    states: list[RowState],
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    outputs: OutputStore,
    clock: Clock = time.time,
) -> list[RowState]:
    """Poll every submitted row until it is terminal or past its deadline.

    SVGs are downloaded the moment their task succeeds: result URLs are short-lived.
    """
    pending = {s.task_id: s for s in states if s.status is RowStatus.SUBMITTED and s.task_id}
    interval = settings.poll_interval_s
    last_error: str | None = None
    async with make_client(endpoint, settings, throttle) as client:
        downloads: list[asyncio.Task[None]] = []
        while pending:
            try:
                results = await client.results(list(pending))
                last_error = None
            except Img2SvgError as exc:
                results = []
                last_error = str(exc)
                log.warning("polling %d tasks failed: %s", len(pending), exc)
            now = clock()
            for result in results:
                state = pending.get(result.task_id)
                if state is None:
                    continue
                if _settle(state, result, now):
                    del pending[result.task_id]
                    if state.status is RowStatus.SUCCEEDED:
                        downloads.append(
                            asyncio.create_task(_download(client, state, outputs, clock))
                        )
            for task_id, state in list(pending.items()):
                deadline = (state.submitted_at or now) + settings.poll_timeout_s
                if now >= deadline:
                    reason = f"not finished after {settings.poll_timeout_s:g} s"
                    if last_error:
                        reason += f" (last poll error: {last_error})"
                    state.finish(RowStatus.TIMED_OUT, now, reason)
                    del pending[task_id]
            if pending:
                await asyncio.sleep(interval)
                interval = min(interval * 1.5, settings.poll_max_interval_s)
        await asyncio.gather(*downloads)
    return states


def _settle(state: RowState, result: TaskResult, now: float) -> bool:
    """Record a terminal result on the row; False while the task is still running."""
    if not result.known:
        state.finish(RowStatus.ERROR, now, f"the service does not know task {result.task_id}")
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
            state.svg_url = sub.image
            state.status = RowStatus.SUCCEEDED  # provisional until the download checks out
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
    client: AsyncImg2SvgClient, state: RowState, outputs: OutputStore, clock: Clock
) -> None:
    assert state.svg_url
    try:
        data = await client.download(state.svg_url)
        check_svg(data)
        state.svg_path = await asyncio.to_thread(outputs.write_svg, state.row_id, data)
        state.svg_bytes = len(data)
    except Img2SvgError as exc:
        state.finish(RowStatus.ERROR, clock(), f"SVG download failed: {exc}")
    except InvalidSvg as exc:
        state.finish(RowStatus.ERROR, clock(), f"SVG check failed: {exc}")
    except OSError as exc:
        state.finish(RowStatus.ERROR, clock(), f"cannot write the SVG: {exc}")
