"""Typed views of the API's answers, as the pipeline needs them (see `answers` for the reading)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class TaskStatus(IntEnum):
    """`task_status` of a sub-task, as documented."""

    WAITING = 0
    DONE = 1
    PROCESSING = 2
    FAILED = 3
    REJECTED = 4


@dataclass(frozen=True)
class SubmittedTask:
    """A code-0 answer to a submission: a task exists and is billed."""

    task_id: str
    sub_task_ids: tuple[str, ...] = ()
    attempts: int = 1  # HTTP attempts it took (client-side, not API)


class Verdict(StrEnum):
    """What a result answer says about one task."""

    PENDING = "pending"  # not finished yet, however the API put it
    DONE = "done"  # finished, with an SVG URL
    FAILED = "failed"  # task_status 3
    REJECTED = "rejected"  # task_status 4 (content moderation)
    UNKNOWN_TASK = "unknown_task"  # the API said it has no such task: evidence, not proof, of loss
    QUERY_ERROR = "query_error"  # the API could not answer for this task now: ask again


@dataclass(frozen=True)
class TaskView:
    task_id: str
    verdict: Verdict
    sub_task_id: str | None = None
    svg_url: str | None = None
    reason: str | None = None  # the failure `description`, or the error message
    code: int | None = None  # a per-entry error code, when there was one

    @property
    def terminal(self) -> bool:
        return self.verdict in (Verdict.DONE, Verdict.FAILED, Verdict.REJECTED)
