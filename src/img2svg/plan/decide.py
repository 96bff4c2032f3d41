"""Decide, before anything is spent, what each manifest row needs: the bill of a run.

Rows are grouped by what they would cost: one *job* per distinct (image fingerprint, mode) in
the whole run, so duplicate images are submitted once, and every row that holds the image
follows the job. Planning goes a chunk at a time against the run's workspace (which jobs the
run already has) and the ledger of earlier runs, with set-based lookups: the ledger says, for
each new job, whether its SVG is already on disk (reuse it), whether a task is already running
on this backend (poll it, never resubmit), whether moderation already refused it (report that
again, unpaid), whether an earlier submission may have been billed without the pipeline
learning its task (`unconfirmed`: never resent automatically), or whether it must be submitted.
`--force` submits every job again; `--limit` caps how many are submitted in one run;
`--resubmit-unconfirmed` submits the unconfirmed jobs and nothing else.

Rows come in the run's order (`--order-by`, else the manifest's), chunk after chunk, and a job
takes its place in that order at the first of its rows there: that is the order `--limit` takes
jobs in. Whatever the order, a job is led by its first row in the manifest (whose row id names
the SVG the task makes), so a later chunk that holds an earlier row of a planned image moves the
lead there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from img2svg.plan.identify import Identified
from img2svg.run.jobs import JobRecord
from img2svg.run.rows import ManifestRow, RowStatus
from img2svg.stage.images import describe
from img2svg.stores.copies import intact_copy
from img2svg.stores.ledger import Ledger, State, Submission, submission_key
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace


@dataclass(frozen=True)
class PlanOptions:
    """`resend_interrupted`: the backend dedupes a resent Idempotency-Key, so a submission whose
    answer was lost may be sent again; if not, it may already have been billed and its rows are
    `unconfirmed`, which `resubmit_unconfirmed` submits (and nothing else)."""

    mode: str
    backend: str
    force: bool = False
    limit: int | None = None
    resend_interrupted: bool = True
    resubmit_unconfirmed: bool = False


def decide_rows(
    chunk: int,
    rows: Sequence[ManifestRow],
    identified: Sequence[Identified],
    *,
    workspace: Workspace,
    ledger: Ledger,
    outputs: OutputStore,
    options: PlanOptions,
) -> None:
    """Record in the workspace what each row of the chunk needs."""
    now = time.time()
    settled: list[tuple[int, str, str | None]] = []
    members: list[tuple[int, str]] = []
    leads: dict[str, tuple[ManifestRow, Identified]] = {}
    for row, item in zip(rows, identified, strict=True):
        if row.invalid_reason:
            settled.append((row.index, str(RowStatus.INVALID), row.invalid_reason))
        elif item.status is not None or item.fingerprint is None or item.ref is None:
            settled.append((row.index, str(item.status or RowStatus.ERROR), item.error))
        else:
            key = submission_key(item.fingerprint, options.mode)
            members.append((row.index, key))
            lead = leads.get(key)
            if lead is None or row.index < lead[0].index:
                leads[key] = (row, item)  # the first row in the manifest; the job's place stays
    known = _known_leads(workspace, list(leads))
    new = {key: lead for key, lead in leads.items() if key not in known}
    history = ledger.submissions(list(new))
    decide = _Decider(ledger, outputs, options, now, submitted=workspace.count_jobs("submit"))
    jobs = [decide(chunk, key, row, item, history.get(key)) for key, (row, item) in new.items()]
    workspace.save_plan(settled, members, jobs)
    moved = [
        (key, _lead_fields(row, item))
        for key, (row, item) in leads.items()
        if key in known and row.index < known[key]
    ]
    if moved:  # only with --order-by can a later chunk hold an earlier row of the manifest
        workspace.save_outcomes(moved)


def _known_leads(workspace: Workspace, keys: list[str]) -> dict[str, int]:
    """The jobs the run already has (planned in an earlier chunk): key -> lead row's index."""
    found: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        part = keys[start : start + 500]
        marks = ",".join("?" * len(part))
        found.update(
            workspace.db.execute(
                f"SELECT key, lead_idx FROM jobs WHERE key IN ({marks})", part
            ).fetchall()
        )
    return found


def _lead_fields(row: ManifestRow, item: Identified) -> dict[str, Any]:
    assert item.ref is not None
    return {
        "lead_idx": row.index,
        "lead_row_id": row.row_id,
        "image": describe(row.image),
        "ref_kind": item.ref.kind,
        "ref_location": item.ref.location,
    }


class _Decider:
    def __init__(
        self, ledger: Ledger, outputs: OutputStore, options: PlanOptions, now: float, submitted: int
    ) -> None:
        self.ledger, self.outputs, self.options, self.now = ledger, outputs, options, now
        self.submitted = submitted  # jobs of the run to submit so far (for --limit)

    def __call__(
        self, chunk: int, key: str, row: ManifestRow, item: Identified, past: Submission | None
    ) -> JobRecord:
        options = self.options
        job = _record(chunk, key, row, item)
        known = past  # even under --force, a new task needs a key of its own
        if options.force:
            past = None
        unconfirmed = past is not None and _unconfirmed(past, options)
        if unconfirmed and not options.resubmit_unconfirmed:
            return replace(
                job, **_settled(RowStatus.UNCONFIRMED, _unconfirmed_reason(past), self.now)
            )
        if past is not None and not unconfirmed:
            decided = self._from_history(past)
            if decided is not None:
                return replace(job, **decided)
        if options.resubmit_unconfirmed and not unconfirmed:
            return replace(job, **_settled(RowStatus.SKIPPED, _NOT_UNCONFIRMED, self.now))
        if options.limit is not None and self.submitted >= options.limit:
            reason = (
                f"not submitted: the run's --limit of {options.limit} submissions was reached; "
                "run again to continue"
            )
            return replace(job, **_settled(RowStatus.SKIPPED, reason, self.now))
        self.submitted += 1
        renew = options.force or unconfirmed
        idem_key = _idempotency_key(key, known, options.backend, renew=renew)
        return replace(job, action="submit", status=str(RowStatus.PENDING), idem_key=idem_key)

    def _from_history(self, past: Submission) -> dict[str, Any] | None:
        """What earlier runs did to this job, when that settles it or asks for a poll."""
        same_backend = past.backend == self.options.backend and past.task_id is not None
        if past.state == State.SUCCEEDED:
            copy = intact_copy(past, self.ledger, self.outputs)
            if copy is not None:
                return {
                    "action": "settled",
                    "status": str(RowStatus.SUCCEEDED),
                    "reused": 1,
                    "svg_sha256": past.svg_sha256,
                    "svg_bytes": copy[1],
                    "flags": past.flags or "",
                    "quality": past.quality,  # None (older ledgers): scored by this run
                    "svg_url": past.svg_url,
                    **_task_fields(past),
                    "finished_at": past.finished_at,
                }
            # The SVG is gone but the task is not: download it again, unpaid.
            return _poll(past) if same_backend else None
        if past.state == State.SUBMITTED and same_backend:
            return _poll(past)
        if past.state == State.REJECTED:
            reason = (
                f"{past.error or 'rejected by content moderation'} (in an earlier run; not "
                "resubmitted, use --force to try again)"
            )
            return _settled(RowStatus.REJECTED, reason, self.now) | _task_fields(past)
        return None


def _record(chunk: int, key: str, row: ManifestRow, item: Identified) -> JobRecord:
    assert item.fingerprint is not None
    return JobRecord(key=key, chunk=chunk, fingerprint=item.fingerprint, **_lead_fields(row, item))


def _settled(status: RowStatus, reason: str | None, now: float) -> dict[str, Any]:
    return {"action": "settled", "status": str(status), "error": reason, "finished_at": now}


def _task_fields(past: Submission) -> dict[str, Any]:
    return {
        "task_id": past.task_id,
        "sub_task_id": past.sub_task_id,
        "submitted_at": past.submitted_at,
        "attempts": past.attempts,
        "token_id": past.token_id,
    }


def _poll(past: Submission) -> dict[str, Any]:
    return {
        "action": "poll",
        "status": str(RowStatus.SUBMITTED),
        "idem_key": past.idem_key,
        **_task_fields(past),
    }


def _unconfirmed(past: Submission, options: PlanOptions) -> bool:
    """May an earlier submission have created a task the ledger does not know of?"""
    if past.state == State.UNCONFIRMED:
        return True
    # `submitting`: the run stopped between the POST and its answer. Where the API dedupes
    # Idempotency-Key, resending the same key is free; elsewhere it may bill twice.
    return (
        past.state == State.SUBMITTING
        and past.backend == options.backend
        and not options.resend_interrupted
    )


def _unconfirmed_reason(past: Submission | None) -> str:
    detail = (
        "" if past and past.state == State.UNCONFIRMED else " (the run stopped before its answer)"
    )
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


def _idempotency_key(key: str, past: Submission | None, backend: str, *, renew: bool) -> str:
    """Derived from the job's key; a new one only when a new task is wanted.

    An interrupted submission (`submitting`: the answer was lost) is resent with the same key,
    so a service that honours Idempotency-Key returns the task it may already have created.
    """
    if not renew and past and past.state == State.SUBMITTING and past.backend == backend:
        return past.idem_key
    nonce = f"{past.idem_key}:{past.finished_at or past.created_at}" if past else "first"
    return hashlib.sha256(f"img2svg\n{key}\n{nonce}".encode()).hexdigest()
