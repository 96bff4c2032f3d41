"""The work of one batch of jobs, in plain async Python: submit, then poll and download.

The Prefect tasks in `tasks/` are thin wrappers around these two functions. Every outcome,
good or bad, is written into the row's state; nothing here raises for a bad row.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence

import httpx

from img2svg.client import (
    AsyncImg2SvgClient,
    Img2SvgError,
    RefusedError,
    ResultUrlGone,
    SubmissionsHalted,
    TaskView,
    Throttle,
    Unauthorized,
    Verdict,
)
from img2svg.client.client import MAX_BATCH_IDS
from img2svg.fsutil import NoSpaceLeft, ensure_room, is_disk_full
from img2svg.run.jobs import Job
from img2svg.run.notify import callback_url, new_token, token_hash
from img2svg.run.rows import RowFlag, RowStatus, join_flags
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stage.images import ImageUnavailable, InvalidImageRef, prepare
from img2svg.stores.ledger import Ledger, LedgerUnavailable, State, Submission, is_postgres
from img2svg.stores.outputs import OutputStore
from img2svg.svg import sanitize_svg
from img2svg.svg.check import InvalidSvg, check_svg

log = logging.getLogger(__name__)

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
        unknown_task_codes=endpoint.unknown_task_codes,
    )


async def submit_jobs(
    jobs: Sequence[Job],
    *,
    endpoint: Endpoint,
    settings: RunSettings,
    throttle: Throttle,
    ledger: Ledger,
    clock: Clock = time.time,
    on_done: OnFinal | None = None,
) -> list[Job]:
    """Submit each job once: the ledger claims its idempotency key right before the POST
    leaves, and records the task id as soon as the answer comes. Each submission first takes a
    slot of the run's task window (the poller gives it back); `on_done` hears of each job
    whose submission ended, sent or not."""
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
                    # Whatever the ledger holds stands: a claimed key is never sent twice.
                    stop = stops_the_run(exc, ledger)
                    if stop is None:
                        log.exception("submitting %s failed", job.lead.row_id)
                        reason = f"submission failed unexpectedly: {exc!r}"
                    else:
                        if not throttle.halted:
                            log.error("%s", stop)
                        throttle.halt(stop)
                        reason = f"not submitted: {stop}"
                    job.lead.finish(RowStatus.ERROR, clock(), reason)
                if job.lead.status is not RowStatus.SUBMITTED or job.lead.task_id is None:
                    # Not in flight, or maybe (an answer lost): a real one ends in seconds, a
                    # 429 says so if not, and a slot held for a callback would idle.
                    throttle.window.release(job.key, finished=False)
                if on_done is not None:
                    on_done(job)

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
            token = new_token() if settings.notify_url else None
            claim = _Claim(ledger, job, endpoint, settings.mode, token)
            try:
                submitted = await client.submit(
                    payload.image,
                    settings.mode,
                    notify_url=callback_url(settings.notify_url, token) if token else None,
                    idempotency_key=job.idem_key,
                    before_send=claim,
                    window_key=job.key,
                )
            except AlreadyClaimed as taken:
                _adopt(job, taken.submission, clock(), endpoint.identity)
                return
            except Img2SvgError as exc:
                state.attempts = exc.attempts
                await _record_submit_error(
                    job, exc, claim.sent, endpoint, throttle, ledger, clock(), token is not None
                )
                return
            sub_task_id = submitted.sub_task_ids[0] if submitted.sub_task_ids else None
            try:
                await asyncio.to_thread(
                    ledger.submitted, job.key, submitted.task_id, sub_task_id, submitted.attempts
                )
            except Exception as exc:  # created, and not recorded: never guessed
                stop = stops_the_run(exc, ledger)
                if stop is None:
                    raise
                state.task_id = submitted.task_id
                state.finish(
                    RowStatus.UNCONFIRMED,
                    clock(),
                    f"task {submitted.task_id} was created, but the ledger could not record it "
                    f"({stop}); the next run does not send it again: check the account's task "
                    "list, then use --resubmit-unconfirmed if it is not there",
                )
                if not throttle.halted:
                    log.error("%s", stop)
                throttle.halt(stop)
                return
            state.attempts = submitted.attempts
            state.status = RowStatus.SUBMITTED
            state.task_id = submitted.task_id
            state.sub_task_id = sub_task_id
            state.submitted_at = clock()
            job.token_id = endpoint.token_id

        await asyncio.gather(*(submit_one(job) for job in jobs))
    return list(jobs)


class AlreadyClaimed(Exception):
    """The job's idempotency key is already in the ledger: it must not be sent again."""

    def __init__(self, submission: Submission) -> None:
        super().__init__(f"idempotency key already used ({submission.state})")
        self.submission = submission


class _Claim:
    """Awaited by the client right before the POST goes on the wire, after every wait: only
    then does the ledger say a task may exist. Later attempts of the same submission (which
    the client makes only when they cannot bill twice) find it claimed already."""

    def __init__(
        self, ledger: Ledger, job: Job, endpoint: Endpoint, mode: str, token: str | None
    ) -> None:
        self.ledger, self.job, self.endpoint, self.mode = ledger, job, endpoint, mode
        self.callback = token_hash(token) if token else None
        self.sent = False

    async def __call__(self) -> None:
        if self.sent:
            return
        if not is_postgres(self.ledger.location):  # its disk holds the run's records
            ensure_room(disk_of(self.ledger))
        taken = await asyncio.to_thread(
            self.ledger.claim,
            self.job.key,
            fingerprint=self.job.fingerprint,
            mode=self.mode,
            backend=self.endpoint.identity,
            idem_key=self.job.idem_key,
            token_id=self.endpoint.token_id,
            resend_ok=self.endpoint.idempotent,
            callback=self.callback,
        )
        if taken is not None:
            raise AlreadyClaimed(taken)
        self.sent = True


def _adopt(job: Job, past: Submission, now: float, backend: str) -> None:
    """What the ledger says of a key that was already sent (a retried batch, another run)."""
    state = job.lead
    if past.backend != backend and past.state != State.REFUSED:
        # Another run or shard, on another service (its own embedded engine), met the same
        # image first: its task cannot be polled from here, and sending it again would pay twice.
        state.finish(
            RowStatus.SKIPPED,
            now,
            f"not submitted: another run or shard is converting the same image on {past.backend} "
            f"({past.state}); the next run reuses its SVG",
        )
        return
    if past.task_id and past.state in (State.SUBMITTED, State.SUCCEEDED):
        state.status = RowStatus.SUBMITTED  # poll it (and download again), never resubmit
        state.task_id, state.sub_task_id = past.task_id, past.sub_task_id
        state.submitted_at = past.submitted_at
        job.token_id = past.token_id
    elif past.state in (State.SUBMITTING, State.UNCONFIRMED):
        state.finish(RowStatus.UNCONFIRMED, now, past.error or UNCONFIRMED_HELP)
    else:
        state.finish(
            RowStatus.ERROR,
            now,
            f"already submitted with this key ({past.state}: {past.error or 'no detail'}); "
            "the next run decides what to do with it",
        )


UNCONFIRMED_HELP = (
    "may have been billed: the submission was sent and its answer was lost, and this API does "
    "not dedupe resent submissions, so it is not sent again automatically. Check the account's "
    "task list, then run the same command with --resubmit-unconfirmed to submit it anew"
)


async def _record_submit_error(
    job: Job,
    exc: Img2SvgError,
    sent: bool,
    endpoint: Endpoint,
    throttle: Throttle,
    ledger: Ledger,
    now: float,
    awaits_callback: bool,
) -> None:
    state = job.lead
    if isinstance(exc, Unauthorized):
        if not throttle.halted:
            log.error("%s", token_refused(exc))
        throttle.halt(token_refused(exc))
        state.finish(RowStatus.ERROR, now, token_refused(exc))
    elif isinstance(exc, SubmissionsHalted):
        state.finish(RowStatus.ERROR, now, f"not submitted: {exc}")
    elif isinstance(exc, RefusedError) and not exc.reached_server:
        state.finish(RowStatus.ERROR, now, f"refused: {exc}")
    else:
        state.finish(RowStatus.ERROR, now, f"unreachable after {exc.attempts} attempts: {exc}")
    if not sent:
        return  # never on the wire: the ledger holds nothing new, the next run submits it
    if not exc.reached_server:
        await asyncio.to_thread(ledger.not_created, job.key, state.error or str(exc))
    elif endpoint.idempotent:
        # Stays `submitting`: the next run resends the same key, which this API dedupes.
        state.error = f"{state.error}; the next run resends it with the same Idempotency-Key"
    else:
        reason = f"{UNCONFIRMED_HELP} ({exc})"
        await asyncio.to_thread(ledger.unconfirmed, job.key, reason)
        if awaits_callback:  # its callback may yet name the task: see `CallbackWait`
            state.status, state.finished_at, state.submitted_at = RowStatus.SUBMITTED, None, now
            state.error = f"the answer was lost ({exc}); waiting for the task's callback"
        else:
            state.finish(RowStatus.UNCONFIRMED, now, reason)


def stops_the_run(exc: BaseException, ledger: Ledger, where: str | None = None) -> str | None:
    """The message, when `exc` is one every later row would meet too (a full disk, the ledger
    gone past its bound): the run stops submitting on it. None: this row's own failure."""
    if isinstance(exc, NoSpaceLeft | LedgerUnavailable):
        return str(exc)
    if is_disk_full(exc):
        return str(NoSpaceLeft(where or disk_of(ledger)))
    return None


def disk_of(ledger: Ledger) -> str:
    """Where a run's own files live (its workspace and a SQLite ledger): the ledger's folder."""
    return os.path.dirname(str(ledger.location)) or "."


def token_refused(exc: Exception) -> str:
    """What a run and its rows say when the API refuses the token: said once, whole."""
    return (
        f"the API refused the token ({exc}; expired or revoked?): set a valid "
        "HIDREAM_API_TOKEN or update the Secret block, then run the same command again to resume"
    )


OnFinal = Callable[[Job], None]


class Poller:
    """Watches submitted tasks with the batch result endpoint; jobs may be added at any time,
    so polling runs alongside submitting.

    SVGs are downloaded the moment their task succeeds: result URLs are short-lived. A task
    frees its slot in the run's task window the moment it is seen finished (before anything
    else is done with the answer), so the next submission leaves at once. A job still running
    at its deadline stays `submitted` in the ledger, so the next run polls it again instead of
    paying for it twice.

    Polls are timed by what tasks take. Each task is asked about when it is due: its
    submission plus the typical duration (learned from the tasks of this run seen ending,
    each counted at the middle of the span between the last poll that saw it running and the
    one that saw it end, so a late poll does not make the next one later still), then again
    at a twentieth of its age while it runs on. Before any task has ended, a task is asked
    about at a quarter of its age. One batch request asks about every task due (and the
    others that fit in it). Between two polls there are at least `poll_min_interval_s` (more
    for long tasks, and no less than the last poll took to answer: a slow API is not asked
    faster than it answers), and at most `poll_interval_s`.
    """

    def __init__(
        self,
        client: AsyncImg2SvgClient,
        endpoint: Endpoint,
        settings: RunSettings,
        throttle: Throttle,
        outputs: OutputStore,
        ledger: Ledger,
        *,
        on_final: OnFinal | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.client, self.settings, self.throttle = client, settings, throttle
        self.outputs, self.ledger, self.clock = outputs, ledger, clock
        self.on_final = on_final or (lambda job: None)
        self.pending: dict[str, Job] = {}
        self.unknown = _UnknownTasks(settings, endpoint)
        self.downloads: set[asyncio.Task[None]] = set()
        self.last_error: str | None = None
        self.typical_s: float | None = None  # moving average of task durations seen
        self._since: dict[str, float] = {}  # when this poller started watching each task
        self._start: dict[str, float] = {}  # when each task began, as far as its due time goes
        self._seen: dict[str, float] = {}  # when each task was last seen not ended
        self._fresh: set[str] = set()  # submitted by this run: its duration is learned from
        self._last_poll: tuple[float, float] | None = None  # (sent, answered)
        self._halted = False
        self.stopped: BaseException | None = None  # the workspace cannot be written any more
        self.no_space: NoSpaceLeft | None = None  # SVGs cannot be written: none is downloaded

    def add(self, jobs: list[Job], *, resumed: bool = False) -> None:
        """Watch the submitted ones among `jobs`; `resumed`: submitted by an earlier run (they
        may have ended long ago: asked about at once, and their durations teach nothing)."""
        now = self.clock()
        for job in jobs:
            state = job.lead
            if state.status is not RowStatus.SUBMITTED or not state.task_id:
                continue
            task_id, submitted = state.task_id, state.submitted_at
            self.pending[task_id] = job
            # A task resumed from an earlier run gets a full poll_timeout from now.
            self._since[task_id] = max(submitted or now, now)
            if resumed or submitted is None or submitted > now:
                self._start[task_id] = min(submitted or now, now)
                self._seen[task_id] = -math.inf
            else:
                self._start[task_id] = self._seen[task_id] = submitted
                self._fresh.add(task_id)

    async def round(self) -> None:
        """One batch query for the tasks due (filled up with the next ones due); settle what
        it says."""
        if self._halted or not self.pending:
            return
        sent = self.clock()
        try:
            views = await self.client.results(self._to_ask(sent))
            self.last_error = None
        except Unauthorized as exc:
            self.throttle.halt(token_refused(exc))
            now = self.clock()
            for job in list(self.pending.values()):
                job.lead.finish(RowStatus.ERROR, now, f"polling refused: {token_refused(exc)}")
                self._final(job)
            self.pending.clear()
            self._halted = True
            return
        except Img2SvgError as exc:
            views = []
            self.last_error = str(exc)
            log.warning("polling %d tasks failed: %s", len(self.pending), exc)
        now = self.clock()
        self._last_poll = (sent, now)
        ended: list[tuple[Job, TaskView]] = []
        for view in views:
            job = self.pending.get(view.task_id)
            if job is None:
                continue
            if view.verdict is Verdict.QUERY_ERROR:
                self.last_error = f"the API answered code {view.code} for it: {view.reason}"
            if not self.unknown.settle(job, view, now) and not view.terminal:
                self._seen[view.task_id] = sent  # not ended when asked: asked again later
                continue
            del self.pending[view.task_id]
            self.throttle.window.release(job.key)  # the next submission leaves now
            if view.terminal:
                self._learn(view.task_id, now)
            self._forget(view.task_id)
            ended.append((job, view))
        for job, view in ended:
            if view.verdict is Verdict.DONE and self.no_space is not None:
                # The disk is full: what room is left goes to the ledger's records.
                job.lead.finish(RowStatus.ERROR, now, f"not downloaded: {self.no_space}")
                self._final(job)
            elif view.verdict is Verdict.DONE:
                job.lead.sub_task_id = view.sub_task_id or job.lead.sub_task_id
                job.lead.svg_url = view.svg_url
                job.lead.finished_at = now  # still `submitted` until the SVG is written
                task = asyncio.create_task(self._download(job))
                self.downloads.add(task)
                task.add_done_callback(self.downloads.discard)
            else:
                await _record_end(job, view, self.ledger, now)
                self._final(job)
        self._expire(now)

    def _to_ask(self, now: float) -> list[str]:
        """The tasks due (by the next poll's earliest time), then the soonest due, to a whole
        number of batch requests."""
        floor, ceiling = self._bounds()
        by_due = sorted(self.pending, key=lambda t: self._check_at(t, floor, ceiling))
        due = sum(self._check_at(t, floor, ceiling) <= now + floor for t in by_due)
        batches = max(1, math.ceil(due / MAX_BATCH_IDS))
        return by_due[: batches * MAX_BATCH_IDS]

    def _expire(self, now: float) -> None:
        for task_id, job in list(self.pending.items()):
            if now < self._since[task_id] + self.settings.poll_timeout_s:
                continue
            reason = f"not finished after {self.settings.poll_timeout_s:g} s"
            last = self.last_error and f"last poll error: {self.last_error}"
            note = self.unknown.note(job) or last
            if note:
                reason += f" ({note})"
            job.lead.finish(RowStatus.TIMED_OUT, now, reason + _RESUME_HINT)
            del self.pending[task_id]
            self._forget(task_id)
            self.throttle.window.release(job.key, finished=False)
            self._final(job)

    def next_wait(self) -> float:
        """Seconds until the next poll is worth making: when the first pending task is due, but
        no sooner than the floor after the last poll and no later than `poll_interval_s`."""
        floor, ceiling = self._bounds()
        if not self.pending:
            return ceiling
        now = self.clock()
        due = min(self._check_at(t, floor, ceiling) for t in self.pending)
        if self._last_poll is not None:
            answered = self._last_poll[1]
            due = min(max(due, answered + floor), answered + ceiling)
        return max(0.0, min(due - now, ceiling))

    def _bounds(self) -> tuple[float, float]:
        """(floor, ceiling) between two polls: the floor grows with what tasks take and with
        how long the API takes to answer a poll, up to the ceiling."""
        ceiling = self.settings.poll_interval_s
        floor = self.settings.poll_min_interval_s
        if self.typical_s is not None:
            floor = max(floor, _FLOOR_SHARE * self.typical_s)
        if self._last_poll is not None:
            floor = max(floor, self._last_poll[1] - self._last_poll[0])
        return min(floor, ceiling), ceiling

    def _check_at(self, task_id: str, floor: float, ceiling: float) -> float:
        """When the task is next worth asking about."""
        start, seen = self._start[task_id], self._seen[task_id]
        if self.typical_s is not None and seen < start + self.typical_s:
            return start + self.typical_s  # not asked about since it became due
        if seen == -math.inf:
            return seen  # resumed: at once
        share = _OVERDUE_SHARE if self.typical_s is not None else _UNKNOWN_SHARE
        return seen + min(ceiling, max(floor, share * (seen - start)))

    def _learn(self, task_id: str, now: float) -> None:
        if task_id not in self._fresh:
            return  # resumed from an earlier run: its duration says nothing about now
        start = self._start[task_id]
        # It ended after it was last seen running and before this answer: the middle of that
        # span, not the moment a poll happened to notice it.
        took = (max(self._seen[task_id], start) + now) / 2 - start
        self.typical_s = took if self.typical_s is None else 0.8 * self.typical_s + 0.2 * took

    def _forget(self, task_id: str) -> None:
        for known in (self._start, self._seen):
            known.pop(task_id, None)
        self._fresh.discard(task_id)

    async def _download(self, job: Job) -> None:
        try:
            await _download(self.client, job, self.outputs, self.ledger, self.settings, self.clock)
        except (NoSpaceLeft, LedgerUnavailable) as exc:  # the row says so; said once here
            self._stop(str(exc))
            if isinstance(exc, NoSpaceLeft):
                self.no_space = exc
        self._final(job)

    def _final(self, job: Job) -> None:
        try:
            self.on_final(job)
        except Exception as exc:  # the ledger holds the truth: a workspace write may fail
            stop = stops_the_run(exc, self.ledger)
            if stop is None:
                log.exception("recording the outcome of %s failed", job.lead.row_id)
            else:
                self._stop(stop)
                self.stopped = self.stopped or exc  # nothing more can be recorded: stop polling

    def _stop(self, reason: str) -> None:
        """Something every later row would meet too: no more submissions, said once."""
        if not self.throttle.halted:
            log.error("%s", reason)
        self.throttle.halt(reason)

    async def finish(self) -> None:
        """Wait for the downloads still running."""
        while self.downloads:
            await asyncio.gather(*list(self.downloads))


# How polls follow what tasks take (Poller): a task past its due time is asked about again
# after this share of its age, or, before any task has ended, after a larger share; polls are
# at least this share of the typical duration apart.
_OVERDUE_SHARE = 0.05
_UNKNOWN_SHARE = 0.25
_FLOOR_SHARE = 0.02


_RESUME_HINT = "; the task is kept in the ledger and the next run polls it again, unpaid"


class _UnknownTasks:
    """ "No such task" is evidence, not proof: an API may answer it for a task it has not yet
    indexed, during an incident, or to another token than the one that submitted. A task is
    lost (and resubmitted by the next run) only when the API said so on several polls in a
    row, long enough after submission, to the token that submitted it."""

    def __init__(self, settings: RunSettings, endpoint: Endpoint) -> None:
        self.settings = settings
        self.token_id = endpoint.token_id
        self.streaks: dict[str, int] = {}

    def settle(self, job: Job, view: TaskView, now: float) -> bool:
        """Count the answer; True when it makes the task lost (the row is then finished)."""
        task_id = job.lead.task_id or ""
        if view.verdict is not Verdict.UNKNOWN_TASK:
            self.streaks.pop(task_id, None)
            return False
        streak = self.streaks[task_id] = self.streaks.get(task_id, 0) + 1
        age = now - (job.lead.submitted_at or now)
        same_token = job.token_id in (None, self.token_id)
        if streak < self.settings.lost_after_polls or age < self.settings.lost_min_age_s:
            return False
        if not same_token:
            return False
        job.lead.finish(
            RowStatus.ERROR,
            now,
            f"the API does not know task {task_id} (said so on {streak} polls, "
            f"{age:.0f} s after submission); the next run submits it again",
        )
        return True

    def note(self, job: Job) -> str | None:
        if not self.streaks.get(job.lead.task_id or ""):
            return None
        if job.token_id not in (None, self.token_id):
            return (
                "the API does not show this task to the current token, which is not the one "
                "that submitted it; it is never resubmitted automatically (use --force)"
            )
        return "the API says it does not know this task; it is not yet taken for lost"


async def _record_end(job: Job, view: TaskView, ledger: Ledger, now: float) -> None:
    """A final answer that produced no SVG, remembered so the next run knows what to do."""
    state = job.lead
    state.sub_task_id = view.sub_task_id or state.sub_task_id
    if view.verdict is Verdict.FAILED:
        state.finish(RowStatus.FAILED, now, view.reason or "conversion failed (task_status 3)")
        await asyncio.to_thread(ledger.finished, job.key, State.FAILED, state.error)
    elif view.verdict is Verdict.REJECTED:
        reason = view.reason or "rejected by content moderation (task_status 4)"
        state.finish(RowStatus.REJECTED, now, reason)
        await asyncio.to_thread(ledger.finished, job.key, State.REJECTED, state.error)
    else:  # lost: finished by _UnknownTasks
        await asyncio.to_thread(ledger.finished, job.key, State.LOST, state.error)


async def _fetch_svg(client: AsyncImg2SvgClient, job: Job, settings: RunSettings) -> bytes:
    """Download the SVG; an expired result URL is replaced by a fresh one from the task."""
    state = job.lead
    for fresh in range(settings.fresh_url_attempts + 1):
        assert state.svg_url
        try:
            return await client.download(state.svg_url)
        except ResultUrlGone:
            if fresh == settings.fresh_url_attempts:
                raise
        view = await client.result(state.task_id or "")
        if view.verdict is not Verdict.DONE:
            raise ResultUrlGone(
                f"result URL expired and the task now answers {view.verdict}", status_code=0
            )
        state.svg_url = view.svg_url
    raise AssertionError("unreachable")


async def _download(
    client: AsyncImg2SvgClient,
    job: Job,
    outputs: OutputStore,
    ledger: Ledger,
    settings: RunSettings,
    clock: Clock,
) -> None:
    """Fetch, check and write the SVG for every row of the job, then record it as done.

    Whatever goes wrong here, the task stays `submitted` in the ledger: it is done and paid
    for, so the next run downloads it again rather than paying for a new one.
    """
    state = job.lead
    try:
        received = await _fetch_svg(client, job, settings)
        check_svg(received)
        data, changed, removed = await asyncio.to_thread(sanitize_svg, received)
        if changed:
            log.warning(
                "the SVG of %s held content that does not draw, removed before writing: %s%s",
                state.row_id,
                "; ".join(removed[:10]),
                f"; and {len(removed) - 10} more" if len(removed) > 10 else "",
            )
        digest = hashlib.sha256(data).hexdigest()  # of the bytes written
        relative = f"svgs/{state.row_id}.svg"  # the lead row's; `finish.fanout` copies it on
        await asyncio.to_thread(outputs.write_svg, state.row_id, data)
        written = [(state.row_id, job.key, relative, digest, *outputs.stat(relative))]
        if changed:
            state.flag(RowFlag.SANITIZED)
        await asyncio.to_thread(
            ledger.succeeded,
            job.key,
            svg_url=state.svg_url or "",
            svg_path=f"svgs/{state.row_id}.svg",
            svg_sha256=digest,
            flags=join_flags(state.flags),  # a rerun reusing this SVG reports them again
        )
        job.svg_sha256 = digest
        await asyncio.to_thread(ledger.record_rows, written)
        state.svg_path = outputs.svg_location(state.row_id)
        state.svg_bytes = len(data)
        state.finish(RowStatus.SUCCEEDED, state.finished_at or clock())
    except Img2SvgError as exc:
        state.finish(RowStatus.ERROR, clock(), f"SVG download failed: {exc}{_RESUME_HINT}")
    except InvalidSvg as exc:
        state.finish(
            RowStatus.ERROR,
            clock(),
            f"the SVG the API returned fails the check ({exc}), so it was not written"
            f"{_RESUME_HINT}; --force converts the image anew",
        )
    except Exception as exc:  # a full disk, a broken fsspec backend, a ledger error
        stop = stops_the_run(exc, ledger, outputs.out)
        if stop is None:
            log.exception("saving the SVG of %s failed", state.row_id)
            state.finish(RowStatus.ERROR, clock(), f"cannot save the SVG: {exc!r}")
            return
        state.finish(RowStatus.ERROR, clock(), f"the SVG was not saved: {stop}{_RESUME_HINT}")
        if is_disk_full(exc):
            raise NoSpaceLeft(outputs.out) from None
        raise
