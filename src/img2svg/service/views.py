"""How a stored task looks on the wire (the `result` shapes of the HiDream API)."""

from __future__ import annotations

from typing import Any

from img2svg.api.paths import FILES_PREFIX
from img2svg.service.store import DONE, FAILED, REJECTED, Task


def svg_url(task: Task, base_url: str) -> str:
    return f"{base_url.rstrip('/')}{FILES_PREFIX}/{task.sub_task_id}.svg"


def sub_task_result(task: Task, base_url: str | None = None) -> dict[str, Any]:
    """`base_url` is how the caller reached us (ports change across restarts); callbacks,
    which answer no request, use the address the task was submitted to."""
    result: dict[str, Any] = {
        "sub_task_id": task.sub_task_id,
        "task_status": task.status,
        "task_completion": round(task.completion, 2),
        "image": svg_url(task, base_url or task.base_url) if task.status == DONE else "",
    }
    if task.status in (FAILED, REJECTED) and task.reason:
        result["description"] = task.reason
    return result


def task_result(task: Task, base_url: str | None = None) -> dict[str, Any]:
    return {"task_id": task.task_id, "sub_task_results": [sub_task_result(task, base_url)]}
