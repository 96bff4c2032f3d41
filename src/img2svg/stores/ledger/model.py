"""What the ledger records: plain values, the same whichever database holds them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    SUBMITTING = "submitting"  # POST on the wire, or sent and the run stopped before its answer
    SUBMITTED = "submitted"  # the API gave a task id: poll it, never resubmit
    UNCONFIRMED = "unconfirmed"  # sent, answer lost, API does not dedupe: maybe billed
    SUCCEEDED = "succeeded"  # SVG downloaded, checked and written (svg_path, svg_sha256)
    FAILED = "failed"  # task_status 3: worth another try on the next run
    REJECTED = "rejected"  # task_status 4: moderation would say no again; only --force retries
    LOST = "lost"  # the service no longer knows the task: resubmit on the next run
    REFUSED = "refused"  # the POST was refused (4xx, code != 0, 401): nothing was created


SUBMITTING, SUBMITTED = State.SUBMITTING, State.SUBMITTED

# A new claim of a key in one of these states pays again because the user asked (--force, or
# --resubmit-unconfirmed); failed and lost tasks are tried again by every run.
PAID_AGAIN_BY_CHOICE = frozenset({SUBMITTED, State.SUCCEEDED, State.REJECTED, State.UNCONFIRMED})


class CallbackOutcome(StrEnum):
    """What the ledger made of a callback (the receiver answers by it)."""

    RECORDED = "recorded"
    REPEATED = "repeated"  # heard before: nothing changes
    UNKNOWN_TOKEN = "unknown_token"  # no claim carries this token (forged, or superseded)
    OTHER_TASK = "other_task"  # the claim's task is another one: not believed


# 1 = first release; 2 adds submissions.token_id (which token submitted); 3 adds
# rows.svg_size/svg_mtime_ns (an SVG is known intact from a stat, as git's index does) and
# file_hashes (a local image is re-read only when its size or mtime changed); 4 adds
# submissions.flags (what the pipeline noticed about the SVG, e.g. `sanitized`); 5 adds
# submissions.quality (the pipeline's fidelity scores) and is the first on PostgreSQL; 6 adds
# submissions.callback (the hash of the claim's callback token), .paid and .paid_again (tasks
# billed for the key, and resubmitted by choice), the callbacks table (what `img2svg receive`
# heard) and the runs table (each run's figures, for `img2svg status`).
SCHEMA_VERSION = 6

PAID_BEFORE_V6 = "UPDATE submissions SET paid = 1 WHERE task_id IS NOT NULL"
"""Migrating to version 6: a ledger kept no count of tasks paid, but each task id was one."""


@dataclass(frozen=True)
class Submission:
    key: str
    fingerprint: str
    mode: str
    backend: str  # which service holds task_id: its URL, or the embedded service's data dir
    idem_key: str
    state: str
    task_id: str | None
    sub_task_id: str | None
    svg_url: str | None
    svg_path: str | None
    svg_sha256: str | None
    error: str | None
    attempts: int
    token_id: str | None  # a hash naming the token that submitted (the API may scope tasks by it)
    flags: str
    created_at: float
    submitted_at: float | None
    finished_at: float | None
    quality: str | None = None  # JSON of fidelity scores, written by the pipeline; opaque here
    callback: str | None = None  # sha256 of the claim's callback token (the token is never kept)
    paid: int = 0  # tasks the API created (and billed) for this key, over every run
    paid_again: int = 0  # of which submitted again by choice (--force, --resubmit-unconfirmed)


@dataclass(frozen=True)
class RowRecord:
    """The SVG a manifest row last received, so a rerun can check it is still there and intact."""

    row_id: str
    key: str
    svg_path: str
    svg_sha256: str
    updated_at: float
    svg_size: int | None = None  # size and mtime when written: unchanged means intact
    svg_mtime_ns: int | None = None


RowWrite = tuple[str, str, str, str] | tuple[str, str, str, str, int | None, int | None]


def padded(entry: RowWrite) -> tuple[object, ...]:
    """A row write with its size and mtime, None when the store could not tell them."""
    return (*entry, None, None) if len(entry) == 4 else entry


def submission_key(fingerprint: str, mode: str) -> str:
    return hashlib.sha256(f"{fingerprint}\n{mode}".encode()).hexdigest()
