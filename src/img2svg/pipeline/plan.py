"""Decide, before anything is spent, what each manifest row needs: the bill of a run.

Rows are grouped by what they would cost: one *job* per distinct (image fingerprint, mode), so
duplicate images are submitted once and fanned out to every row that holds them. The ledger of
earlier runs then says, for each job, whether its SVG is already on disk (reuse it), whether a
task is already running on this backend (poll it, never resubmit), whether moderation already
refused it (report that again, unpaid), whether an earlier submission may have been billed
without the pipeline learning its task (`unconfirmed`: never resent automatically), or whether it
must be submitted. `--force` submits every job again; `--limit` caps how many are submitted in
one run; `--resubmit-unconfirmed` submits the unconfirmed jobs and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from img2svg.pipeline.images import (
    ImageRef,
    ImageUnavailable,
    InvalidImageRef,
    classify,
    describe,
    fingerprint,
)
from img2svg.pipeline.ledger import Ledger, State, Submission, submission_key
from img2svg.pipeline.manifest import ManifestRow
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.rows import RowState, RowStatus
from img2svg.pipeline.settings import RunSettings

log = logging.getLogger("img2svg.pipeline")


@dataclass(frozen=True)
class Identified:
    """A manifest row's image, resolved and fingerprinted, or why that was impossible."""

    index: int
    ref: ImageRef | None = None
    fingerprint: str | None = None
    status: RowStatus | None = None  # INVALID or ERROR when the image could not be identified
    error: str | None = None


@dataclass
class Job:
    """One distinct (image, mode): at most one task on the API, shared by `rows`."""

    key: str
    fingerprint: str
    ref: ImageRef
    idem_key: str
    lead: RowState  # carries the task's progress; the first row holding the image
    followers: list[RowState] = field(default_factory=list)  # the other rows with that image
    token_id: str | None = None  # which token submitted the task (the API may scope tasks by it)

    def row_states(self) -> list[RowState]:
        """Every row of the job, each with the lead's outcome and its own SVG path."""
        states = [self.lead]
        for follower in self.followers:
            state = self.lead.copy_for(follower.index, follower.row_id, follower.image)
            if self.lead.svg_path:
                folder = posixpath.dirname(self.lead.svg_path)
                state.svg_path = posixpath.join(folder, f"{follower.row_id}.svg")
            states.append(state)
        return states


@dataclass
class Plan:
    to_submit: list[Job]
    to_poll: list[Job]  # submitted by an earlier run to this backend: poll, never resubmit
    settled: list[RowState]  # already final: invalid, reused, rejected before, skipped by limit

    def counts(self) -> dict[str, int]:
        rows_to_submit = sum(1 + len(j.followers) for j in self.to_submit)
        rows_to_poll = sum(1 + len(j.followers) for j in self.to_poll)
        settled: dict[str, int] = {}
        for state in self.settled:
            reused = state.reused and state.status is RowStatus.SUCCEEDED
            name = "reused" if reused else str(state.status)
            settled[name] = settled.get(name, 0) + 1
        return {
            "tasks_to_submit": len(self.to_submit),
            "rows_to_submit": rows_to_submit,
            "tasks_to_poll": len(self.to_poll),
            "rows_to_poll": rows_to_poll,
            **{f"rows_{name}": n for name, n in sorted(settled.items())},
        }


def initial_state(row: ManifestRow, mode: str) -> RowState:
    state = RowState(index=row.index, row_id=row.row_id, image=describe(row.image), mode=mode)
    if row.invalid_reason:
        state.finish(RowStatus.INVALID, time.time(), row.invalid_reason)
    return state


async def identify_rows(
    rows: Sequence[ManifestRow], base: str, settings: RunSettings
) -> list[Identified]:
    """Resolve and fingerprint the images of valid rows, a few at a time."""
    gate = asyncio.Semaphore(settings.concurrency)
    async with httpx.AsyncClient(timeout=settings.fetch_timeout_s) as http:

        async def one(row: ManifestRow) -> Identified:
            if row.invalid_reason:
                return Identified(row.index)
            async with gate:
                try:
                    ref = classify(row.image, base)
                    found = await fingerprint(
                        ref,
                        http=http,
                        max_bytes=settings.max_image_bytes,
                        fetch_timeout_s=settings.fetch_timeout_s,
                    )
                except InvalidImageRef as exc:
                    return Identified(row.index, status=RowStatus.INVALID, error=str(exc))
                except ImageUnavailable as exc:
                    return Identified(row.index, status=RowStatus.ERROR, error=str(exc))
                except Exception as exc:  # one odd row must not stop the run
                    log.exception("identifying row %s failed", row.row_id)
                    reason = f"cannot identify the image: {exc!r}"
                    return Identified(row.index, status=RowStatus.ERROR, error=reason)
            return Identified(row.index, ref=ref, fingerprint=found)

        return list(await asyncio.gather(*(one(row) for row in rows)))


def plan_run(
    rows: Sequence[ManifestRow],
    identified: Sequence[Identified],
    *,
    mode: str,
    ledger: Ledger,
    outputs: OutputStore,
    backend: str,
    force: bool = False,
    limit: int | None = None,
    dry_run: bool = False,
    resend_interrupted: bool = True,
    resubmit_unconfirmed: bool = False,
) -> Plan:
    """`dry_run` plans without touching anything (a missing SVG that could be restored from
    another copy counts as reused, but is not restored). `resend_interrupted` is whether the
    backend dedupes a resent Idempotency-Key; if not, a submission whose answer was lost is not
    sent again, since it may already have been billed: its rows are `unconfirmed`, and
    `resubmit_unconfirmed` submits exactly those (every other submission waits)."""
    now = time.time()
    by_index = {item.index: item for item in identified}
    settled: list[RowState] = []
    jobs: dict[str, Job] = {}
    for row in rows:
        state = initial_state(row, mode)
        item = by_index.get(row.index)
        if state.status.final or item is None:
            settled.append(state)
            continue
        if item.status is not None:
            state.finish(item.status, now, item.error)
            settled.append(state)
            continue
        assert item.ref is not None and item.fingerprint is not None
        key = submission_key(item.fingerprint, mode)
        if key in jobs:
            jobs[key].followers.append(state)
        else:
            jobs[key] = Job(key, item.fingerprint, item.ref, "", state)

    history = ledger.submissions(list(jobs))
    row_ids = [s.row_id for job in jobs.values() for s in [job.lead, *job.followers]]
    svgs = _SvgCheck(outputs, ledger, row_ids, write=not dry_run)
    plan = Plan(to_submit=[], to_poll=[], settled=settled)
    for key, job in jobs.items():
        past = None if force else history.get(key)
        unconfirmed = past is not None and _unconfirmed(past, backend, resend_interrupted)
        if unconfirmed and not resubmit_unconfirmed:
            job.lead.finish(RowStatus.UNCONFIRMED, now, _unconfirmed_reason(past))
            plan.settled.extend(job.row_states())
            continue
        if (
            not unconfirmed
            and past is not None
            and _settled_from_history(job, past, svgs, backend, plan, now)
        ):
            continue
        if resubmit_unconfirmed and not unconfirmed:
            _settle_all(job, plan, RowStatus.SKIPPED, now, _NOT_UNCONFIRMED)
            continue
        if limit is not None and len(plan.to_submit) >= limit:
            reason = (
                f"not submitted: the run's --limit of {limit} submissions was reached; "
                "run again to continue"
            )
            _settle_all(job, plan, RowStatus.SKIPPED, now, reason)
            continue
        renew = force or unconfirmed
        job.idem_key = _idempotency_key(key, history.get(key), backend, renew=renew)
        plan.to_submit.append(job)
    return plan


def _unconfirmed(past: Submission, backend: str, resend_interrupted: bool) -> bool:
    """May an earlier submission have created a task the ledger does not know of?"""
    if past.state == State.UNCONFIRMED:
        return True
    # `submitting`: the run stopped between the POST and its answer. Where the API dedupes
    # Idempotency-Key, resending the same key is free; elsewhere it may bill twice.
    return past.state == State.SUBMITTING and past.backend == backend and not resend_interrupted


def _unconfirmed_reason(past: Submission) -> str:
    detail = "" if past.state == State.UNCONFIRMED else " (the run stopped before its answer)"
    return (
        f"an earlier run's submission of this image{detail} may have been billed: it was sent "
        "and no answer was recorded, and this API does not dedupe resent submissions, so it is "
        "not sent again automatically. Check the account's task list, then run the same command "
        "with --resubmit-unconfirmed to submit it anew"
    )


_NOT_UNCONFIRMED = (
    "not submitted: --resubmit-unconfirmed submits only unconfirmed rows; run without it to "
    "continue with this one"
)


def _settle_all(job: Job, plan: Plan, status: RowStatus, now: float, reason: str) -> None:
    for state in [job.lead, *job.followers]:
        state.finish(status, now, reason)
        plan.settled.append(state)


def _settled_from_history(
    job: Job,
    past: Submission,
    svgs: _SvgCheck,
    backend: str,
    plan: Plan,
    now: float,
) -> bool:
    """Apply what earlier runs did to this job; True when nothing needs submitting."""
    same_backend = past.backend == backend and past.task_id is not None
    if past.state == State.SUCCEEDED:
        if svgs.reuse(job, past):
            plan.settled.extend(job.row_states())
            return True
        if same_backend:  # the SVG is gone but the task is not: download it again, unpaid
            _resume(job, past, plan)
            return True
        return False
    if past.state == State.SUBMITTED and same_backend:
        _resume(job, past, plan)
        return True
    if past.state == State.REJECTED:
        job.lead.task_id = past.task_id
        job.lead.sub_task_id = past.sub_task_id
        job.lead.finish(
            RowStatus.REJECTED,
            now,
            f"{past.error or 'rejected by content moderation'} (in an earlier run; not "
            "resubmitted, use --force to try again)",
        )
        plan.settled.extend(job.row_states())
        return True
    return False


def _resume(job: Job, past: Submission, plan: Plan) -> None:
    job.lead.status = RowStatus.SUBMITTED
    job.lead.task_id = past.task_id
    job.lead.sub_task_id = past.sub_task_id
    job.lead.submitted_at = past.submitted_at
    job.lead.attempts = past.attempts
    job.idem_key = past.idem_key
    job.token_id = past.token_id
    plan.to_poll.append(job)


def _idempotency_key(key: str, past: Submission | None, backend: str, *, renew: bool) -> str:
    """Derived from the job's key; a new one only when a new task is wanted.

    An interrupted submission (`submitting`: the answer was lost) is resent with the same key,
    so a service that honours Idempotency-Key returns the task it may already have created.
    """
    if not renew and past and past.state == State.SUBMITTING and past.backend == backend:
        return past.idem_key
    nonce = f"{past.idem_key}:{past.finished_at or past.created_at}" if past else "first"
    return hashlib.sha256(f"img2svg\n{key}\n{nonce}".encode()).hexdigest()


class _SvgCheck:
    """Is a row's SVG from an earlier run still on disk and intact? Restore it if it can be."""

    def __init__(
        self, outputs: OutputStore, ledger: Ledger, row_ids: list[str], *, write: bool
    ) -> None:
        self.outputs = outputs
        self.ledger = ledger
        self.write = write
        self.records = ledger.rows(row_ids)

    def reuse(self, job: Job, past: Submission) -> bool:
        if not past.svg_sha256:
            return False
        rows = [job.lead, *job.followers]
        intact: dict[str, bytes] = {}
        for state in rows:
            record = self.records.get(state.row_id)
            if record and record.svg_sha256 == past.svg_sha256:
                data = self.outputs.read_bytes(f"svgs/{state.row_id}.svg")
                if data is not None and hashlib.sha256(data).hexdigest() == past.svg_sha256:
                    intact[state.row_id] = data
        # A missing or altered file is restored from any intact copy of the same SVG.
        source = next(iter(intact.values()), None) or self._canonical(past)
        if source is None:
            return False
        restored = []
        for state in rows:
            if state.row_id not in intact and self.write:
                relative = f"svgs/{state.row_id}.svg"
                self.outputs.write_bytes(relative, source)
                restored.append((state.row_id, job.key, relative, past.svg_sha256))
        if restored:
            self.ledger.record_rows(restored)
        lead = job.lead
        lead.status = RowStatus.SUCCEEDED
        lead.task_id, lead.sub_task_id = past.task_id, past.sub_task_id
        lead.svg_url, lead.svg_bytes = past.svg_url, len(source)
        lead.svg_path = self.outputs.svg_location(lead.row_id)
        lead.submitted_at, lead.finished_at = past.submitted_at, past.finished_at
        lead.reused = True
        return True

    def _canonical(self, past: Submission) -> bytes | None:
        if not past.svg_path:
            return None
        data = self.outputs.read_bytes(past.svg_path)
        if data is None or hashlib.sha256(data).hexdigest() != past.svg_sha256:
            return None
        return data
