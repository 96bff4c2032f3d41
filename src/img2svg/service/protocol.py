"""Parsing and answering requests the HiDream way: raw JSON bodies, `code`/`message` envelopes.

Bodies are parsed by hand rather than by FastAPI's validation so that every mistake a caller can
make (the seed's trailing comma, a missing field, a bad mode) gets its own documented code, and
so that the seed's `requests.post(data=json.dumps(...))` is accepted whatever its content type.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from img2svg.api.codes import ErrorCode
from img2svg.service.errors import ApiError

MODES = ("fast", "slow")


class SubmitBody(BaseModel):
    """Documentation of the submit body (the handler validates by hand, see module doc)."""

    image: str = Field(description="base64 of the image file, a data: URI, or an http(s) URL")
    mode: str = Field(description="'fast' (quick, small) or 'slow' (higher fidelity)")
    notify_url: str | None = Field(
        default=None, description="POSTed {main_task_id, sub_task_results} when the task ends"
    )


class BatchBody(BaseModel):
    task_id_list: list[str]


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
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(ErrorCode.INVALID_FIELD, "'task_id_list' must be a list of strings")
    if len(ids) > max_ids:
        raise ApiError(ErrorCode.TOO_MANY_TASK_IDS, f"{len(ids)} ids, at most {max_ids}")
    return ids
