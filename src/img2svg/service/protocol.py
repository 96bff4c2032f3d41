"""Parsing and answering requests the HiDream way: raw JSON bodies, `code`/`message` envelopes.

Bodies are parsed by hand rather than by FastAPI's validation so that every mistake a caller can
make (the seed's trailing comma, a missing field, a bad mode) gets its own documented code, and
so that the seed's `requests.post(data=json.dumps(...))` is accepted whatever its content type.
The pydantic models here only describe bodies and answers in the OpenAPI document (`api_doc`),
which `tests/service/test_openapi_fuzz.py` checks every answer against.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, RootModel

from img2svg.api.codes import ErrorCode
from img2svg.service.errors import ApiError

MODES = ("fast", "slow")


class SyncBody(BaseModel):
    """Documentation of the sync body (the handler validates by hand, see module doc)."""

    model_config = ConfigDict(extra="forbid")

    image: str = Field(description="base64 of the image file, a data: URI, or an http(s) URL")
    mode: Literal["fast", "slow"] = Field(
        description="'fast' (quick, small) or 'slow' (higher fidelity)"
    )


class SubmitBody(SyncBody):
    """Documentation of the submit body (the handler validates by hand, see module doc)."""

    notify_url: str | None = Field(
        default=None, description="POSTed {main_task_id, sub_task_results} when the task ends"
    )


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task_id_list: list[str]


# The answers, for the OpenAPI document only: handlers build plain dicts (views.py), and a
# business error is HTTP 200 with `code` != 0 and no `result`.


class SubTaskResult(BaseModel):
    sub_task_id: str
    task_status: Literal[0, 1, 2, 3, 4] = Field(
        description="0 waiting, 2 processing, 1 done, 3 failed, 4 rejected"
    )
    task_completion: float = Field(ge=0, le=1)
    image: str = Field(description="URL of the SVG once task_status is 1, else empty")
    description: str = Field("", description="why the task failed or was rejected")


class TaskResult(BaseModel):
    task_id: str
    sub_task_results: list[SubTaskResult]


class BatchEntry(TaskResult):
    code: int = Field(0, description="1201 (no such task) with empty sub_task_results")
    message: str = ""


class SubmitResult(BaseModel):
    task_id: str
    sub_task_ids: list[str]


class SyncResult(BaseModel):
    svg: str


class _Success(BaseModel):
    code: Literal[0]
    message: str
    request_id: str


class SubmitOk(_Success):
    result: SubmitResult


class ResultOk(_Success):
    result: TaskResult


class BatchOk(_Success):
    result: list[BatchEntry]


class SyncOk(_Success):
    result: SyncResult


class ApiErrorBody(BaseModel):
    """A refusal: `code` is one of the README's error codes; `message` is in X-accept-language."""

    code: Annotated[int, Field(ge=1)]
    message: str
    request_id: str


class ServerErrorBody(BaseModel):
    """HTTP 5xx. Injected faults (--fault-rate) carry no request_id."""

    code: Annotated[int, Field(ge=5000)]
    message: str
    request_id: str = ""


class SubmitAnswer(RootModel[SubmitOk | ApiErrorBody]):
    pass


class ResultAnswer(RootModel[ResultOk | ApiErrorBody]):
    pass


class BatchAnswer(RootModel[BatchOk | ApiErrorBody]):
    pass


class SyncAnswer(RootModel[SyncOk | ApiErrorBody]):
    pass


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    workers: int
    idempotency_keys: bool = Field(description="whether a resent Idempotency-Key is deduped")


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}


def api_doc(
    answer: type[BaseModel],
    *,
    body: type[BaseModel] | None = None,
    quota: bool = False,
    headers: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """Route arguments documenting an API route's answers, headers and hand-parsed body."""
    responses: dict[int | str, dict[str, Any]] = {
        200: {"model": answer, "description": "code 0 with a result, or a refusal"},
        401: {"model": ApiErrorBody, "description": "tokens are configured: 2001"},
        500: {"model": ServerErrorBody, "description": "a bug, or an injected fault"},
        503: {
            "model": ServerErrorBody,
            "description": "busy or an injected fault; nothing was done",
            "headers": _RETRY_AFTER,
        },
    }
    if body is not None:
        responses[413] = {"model": ApiErrorBody, "description": "1006: body too large"}
    if quota:
        responses[429] = {
            "model": ApiErrorBody,
            "description": "2002 rate or 2003 concurrency limit",
            "headers": _RETRY_AFTER,
        }
    extra: dict[str, Any] = {"parameters": [_LANGUAGE_HEADER, *headers]}
    if body is not None:
        extra["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body.model_json_schema()}},
        }
    return {"responses": responses, "openapi_extra": extra, "response_model": None}


# Routes outside the API, which answer no envelope.
SVG_FILE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/svg+xml": {"schema": {"type": "string"}}}, "description": "SVG"},
    404: {
        "description": "no such file, or its task is not done",
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"detail": {"type": "string"}}}
            }
        },
    },
    500: {"model": ServerErrorBody, "description": "an injected fault"},
    503: {"model": ServerErrorBody, "description": "an injected fault"},
}
METRICS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}}
}

_LANGUAGE_HEADER = {
    "name": "X-accept-language",
    "in": "header",
    "required": False,
    "description": "language of `message`: en or zh (default)",
    "schema": {"type": "string", "enum": ["en", "zh"]},
}

SUBMIT_HEADERS = (
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "the same key from the same caller (token) returns the same task",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    {
        "name": "API-User-ID",
        "in": "header",
        "required": False,
        "description": "recorded with the task",
        "schema": {"type": "string"},
    },
)


@dataclass(frozen=True)
class SubmitRequest:
    image: str
    mode: str
    notify_url: str | None


def new_request_id() -> str:
    return str(uuid.uuid1())


def language(request: Request) -> str:
    value = request.headers.get("x-accept-language", "zh").strip().lower()
    return "en" if value.startswith("en") else "zh"


def envelope(result: Any, request_id: str) -> dict[str, Any]:
    return {"code": 0, "message": "Success", "request_id": request_id, "result": result}


def error_response(error: ApiError, request: Request) -> JSONResponse:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    return JSONResponse(
        {
            "code": int(error.code),
            "message": error.message(language(request)),
            "request_id": new_request_id(),
        },
        status_code=error.code.http_status,
        headers=headers,
    )


async def read_json(request: Request, max_bytes: int) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(ErrorCode.BODY_TOO_LARGE, f"limit is {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ApiError(ErrorCode.BODY_TOO_LARGE, f"limit is {max_bytes} bytes")
    if not body.strip():
        raise ApiError(ErrorCode.INVALID_JSON, "the body is empty")
    try:
        return json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(ErrorCode.INVALID_JSON, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            ErrorCode.INVALID_JSON, f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def _is_text(value: str) -> bool:
    """JSON can carry lone UTF-16 surrogates ("\\ud800"), which SQLite and URLs cannot take."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_submit(body: Any, *, allow_notify_url: bool = True) -> SubmitRequest:
    if not isinstance(body, dict):
        raise ApiError(ErrorCode.INVALID_JSON, "the body must be a JSON object")
    known = {"image", "mode", "notify_url"} if allow_notify_url else {"image", "mode"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(ErrorCode.UNKNOWN_FIELD, ", ".join(repr(k) for k in unknown))
    for name in ("image", "mode"):
        if name not in body:
            raise ApiError(ErrorCode.MISSING_FIELD, f"'{name}' is required")
    image, mode, notify_url = body["image"], body["mode"], body.get("notify_url")
    if not isinstance(image, str) or not image.strip():
        raise ApiError(ErrorCode.INVALID_FIELD, "'image' must be a non-empty string")
    if mode not in MODES:
        raise ApiError(ErrorCode.INVALID_MODE, f"got {mode!r}")
    if notify_url is not None and (
        not isinstance(notify_url, str)
        or not notify_url.lower().startswith(("http://", "https://"))
        or not _is_text(notify_url)
    ):
        raise ApiError(ErrorCode.INVALID_FIELD, "'notify_url' must be an http(s) URL")
    return SubmitRequest(image=image.strip(), mode=mode, notify_url=notify_url or None)


def parse_batch(body: Any, max_ids: int) -> list[str]:
    if not isinstance(body, dict):
        raise ApiError(ErrorCode.INVALID_JSON, "the body must be a JSON object")
    unknown = sorted(set(body) - {"task_id_list"})
    if unknown:
        raise ApiError(ErrorCode.UNKNOWN_FIELD, ", ".join(repr(k) for k in unknown))
    if "task_id_list" not in body:
        raise ApiError(ErrorCode.MISSING_FIELD, "'task_id_list' is required")
    ids = body["task_id_list"]
    if not isinstance(ids, list) or not all(isinstance(i, str) and _is_text(i) for i in ids):
        raise ApiError(ErrorCode.INVALID_FIELD, "'task_id_list' must be a list of strings")
    if len(ids) > max_ids:
        raise ApiError(ErrorCode.TOO_MANY_TASK_IDS, f"{len(ids)} ids, at most {max_ids}")
    return ids
