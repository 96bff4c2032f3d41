"""What each answer of the documented API means: the one place that reads them.

HiDream documents the shapes below and little else (no error code table, no idempotency, no
429 semantics), and its own published clients read them leniently. So do we: an answer is read
for what it proves, and where it proves nothing the verdict is the one that cannot cost money
("not finished yet", "ask again", "a task may exist").

| answer                                          | meaning                                    |
|-------------------------------------------------|--------------------------------------------|
| HTTP 401 / 403 on an API call                   | `Unauthorized`: the token is refused       |
| HTTP 429                                        | `RateLimited`, with its Retry-After        |
| HTTP 5xx                                        | `ServerError` (503: nothing was done)      |
| another HTTP 4xx                                | `ClientError`                              |
| HTTP 2xx whose body is not a JSON envelope      | `BadResponse`: the server may have acted   |
| `code != 0` (retryable code of ours)            | `ServerError`                              |
| `code != 0`                                     | `ApiRefused`: nothing was created          |
| submit, `code` 0, a task id (any JSON scalar)   | `SubmittedTask`: created and billed        |
| submit, `code` 0, no readable task id           | `AcceptedUnreadable`: billed, id unknown   |
| result, a per-entry `code` in `unknown_codes`   | `UNKNOWN_TASK`: evidence of a lost task    |
| result, another per-entry `code != 0`           | `QUERY_ERROR`: ask again                   |
| result, `sub_task_results` empty, null, absent  | `PENDING` (it never means done)            |
| `task_status` 0, 2, negative or undocumented    | `PENDING`                                  |
| `task_status` 1 on every sub-task, with a URL   | `DONE`                                     |
| `task_status` 1 without a URL                   | `PENDING`: success needs the media URL     |
| `task_status` 3 on any sub-task                 | `FAILED`, with its `description`           |
| `task_status` 4 on any sub-task                 | `REJECTED`                                 |
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from img2svg.api.codes import ErrorCode
from img2svg.client.errors import (
    AcceptedUnreadable,
    ApiRefused,
    BadResponse,
    ClientError,
    RateLimited,
    ServerError,
    Unauthorized,
)
from img2svg.client.models import SubmittedTask, TaskStatus, TaskView, Verdict

# Codes that say "no such task". Ours (1201); HiDream documents none, so against it a task is
# never declared lost: it stays in the ledger and is polled again.
UNKNOWN_TASK_CODES: frozenset[int] = frozenset({int(ErrorCode.UNKNOWN_TASK)})


def raise_for_http_status(status: int, payload: Any, retry_after_s: float | None) -> None:
    """The HTTP layer of an API answer (a business error is HTTP 200 and passes)."""
    if status < 400:
        return
    message = f"HTTP {status}"
    if isinstance(payload, dict) and payload.get("message"):
        message += f": {payload['message']}"
    if status == 429:
        raise RateLimited(message, retry_after_s=retry_after_s)
    if status >= 500:
        raise ServerError(message, status_code=status, retry_after_s=retry_after_s)
    if status in (401, 403):
        raise Unauthorized(message)
    raise ClientError(message, status_code=status)


def read_envelope(what: str, payload: Any) -> Any:
    """`result` of a `{code, message, request_id, result}` envelope, or the error it carries."""
    if not isinstance(payload, dict) or "code" not in payload:
        raise BadResponse(f"{what}: the answer is not an API envelope")
    code = _as_int(payload["code"])
    if code is None:
        raise BadResponse(f"{what}: the answer's code {payload['code']!r} is not a number")
    if code != 0:
        message = str(payload.get("message") or "")
        if code in _RETRYABLE_CODES:
            raise ServerError(f"API error {code}: {message}", status_code=200)
        raise ApiRefused(code, message)
    return payload.get("result")


_RETRYABLE_CODES = frozenset(int(c) for c in ErrorCode if c.retryable)


def read_submission(result: Any) -> SubmittedTask:
    """A code-0 submit answer: a billed task, whatever else its shape gets wrong."""
    task_id = _as_id(result.get("task_id")) if isinstance(result, dict) else None
    if task_id is None:
        raise AcceptedUnreadable(
            "the API accepted the submission (code 0) but its answer has no readable task_id"
        )
    raw = result.get("sub_task_ids")
    subs = raw if isinstance(raw, list) else [raw]
    return SubmittedTask(task_id, tuple(s for s in map(_as_id, subs) if s is not None))


def read_task(entry: Any, *, task_id: str, unknown_codes: Collection[int]) -> TaskView:
    """One task of a result answer (the `result` of a single query, or a batch entry)."""
    if not isinstance(entry, dict):
        return TaskView(task_id, Verdict.QUERY_ERROR, reason="the answer for this task is empty")
    code = _as_int(entry.get("code")) or 0
    if code:
        verdict = Verdict.UNKNOWN_TASK if code in unknown_codes else Verdict.QUERY_ERROR
        return TaskView(task_id, verdict, reason=str(entry.get("message") or ""), code=code)
    subs = [s for s in entry.get("sub_task_results") or [] if isinstance(s, dict)]
    if not subs:
        return TaskView(task_id, Verdict.PENDING)
    sub_id = _as_id(subs[0].get("sub_task_id"))
    statuses = [_as_int(s.get("task_status")) for s in subs]
    for status, verdict in (
        (TaskStatus.FAILED, Verdict.FAILED),
        (TaskStatus.REJECTED, Verdict.REJECTED),
    ):
        for sub, value in zip(subs, statuses, strict=True):
            if value == status:
                reason = sub.get("description")
                return TaskView(task_id, verdict, sub_id, reason=str(reason) if reason else None)
    url = subs[0].get("image")
    if all(v == TaskStatus.DONE for v in statuses) and isinstance(url, str) and url.strip():
        return TaskView(task_id, Verdict.DONE, sub_id, svg_url=url.strip())
    return TaskView(task_id, Verdict.PENDING, sub_id)


def read_batch(
    result: Any, task_ids: list[str], *, unknown_codes: Collection[int]
) -> list[TaskView]:
    """One view per asked id, in order; an id the answer leaves out is asked again later."""
    if not isinstance(result, list):
        raise BadResponse("batch result is not a list")
    by_id: dict[str, Any] = {}
    for entry in result:
        entry_id = _as_id(entry.get("task_id")) if isinstance(entry, dict) else None
        if entry_id is not None:
            by_id.setdefault(entry_id, entry)
    return [
        read_task(by_id.get(task_id), task_id=task_id, unknown_codes=unknown_codes)
        for task_id in task_ids
    ]


def read_single(
    task_id: str, error: ApiRefused | None, result: Any, *, unknown_codes: Collection[int]
) -> TaskView:
    """The answer to `GET .../results?task_id=`: a refusal of the query is a per-task answer."""
    if error is not None:
        entry = {"code": error.code, "message": error.api_message}
        return read_task(entry, task_id=task_id, unknown_codes=unknown_codes)
    return read_task(result, task_id=task_id, unknown_codes=unknown_codes)


def _as_id(value: Any) -> str | None:
    """Ids are strings in the documentation; integers (or numeric floats) are read as such."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str | int):
        text = str(value).strip()
        return text or None
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None
