"""Typed views of the API's `result` payloads."""

from __future__ import annotations

from enum import IntEnum

from pydantic import BaseModel, ConfigDict, Field


class TaskStatus(IntEnum):
    WAITING = 0
    DONE = 1
    PROCESSING = 2
    FAILED = 3
    REJECTED = 4

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.FAILED, TaskStatus.REJECTED)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SubmittedTask(_Model):
    task_id: str
    sub_task_ids: list[str] = Field(default_factory=list)
    attempts: int = Field(default=1, description="HTTP attempts it took (client-side, not API)")


class SubTaskResult(_Model):
    sub_task_id: str | None = None
    task_status: int
    task_completion: float | None = None
    image: str | None = None  # the SVG URL, once task_status is 1
    description: str | None = None

    @property
    def status(self) -> TaskStatus | None:
        """None for values the API does not document (public clients treat them as pending)."""
        try:
            return TaskStatus(self.task_status)
        except ValueError:
            return None

    @property
    def terminal(self) -> bool:
        return self.status is not None and self.status.terminal


class TaskResult(_Model):
    task_id: str
    sub_task_results: list[SubTaskResult] = Field(default_factory=list)
    code: int | None = None
    message: str | None = None

    @property
    def known(self) -> bool:
        """False when a batch query says the service has no such task."""
        return not self.code
