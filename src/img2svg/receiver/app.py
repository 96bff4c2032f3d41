"""The callback receiver as a FastAPI application: one route that records, one that says it is up.

HiDream POSTs `{main_task_id, sub_task_results}` to a submission's notify_url when its task
ends, counts only HTTP 200 as delivered, waits 5 s and tries at most 3 times. So the receiver
answers at once after one ledger write, says 200 to a repeat (nothing changes), and refuses what
it cannot believe with a 4xx that HiDream will not retry into anything different. The token in
the path is the only credential: the access log is off, and a token is logged as a short hash.

    POST /{token}            a callback (any path prefix before the token: a proxy may add one)
    POST /{prefix}/{token}
    GET  /healthz            the receiver is up and its ledger answers
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from img2svg.run.notify import is_token, token_hash
from img2svg.stores.ledger import CallbackOutcome, Ledger, LedgerUnavailable, describe

log = logging.getLogger("img2svg.receiver")

MAX_BODY_BYTES = 64 * 1024  # HiDream's callback is a few hundred bytes
MAX_SUB_TASKS = 16  # img2svg makes one sub-task per task
MAX_ID_CHARS = 128


@dataclass(frozen=True)
class ReceiverConfig:
    ledger: str  # a SQLite path or a PostgreSQL URL: the pipeline's own ledger
    max_body_bytes: int = MAX_BODY_BYTES


class Refused(Exception):
    """A callback the receiver will not record: its HTTP status and why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


_ANSWERS = {
    CallbackOutcome.RECORDED: (200, "recorded"),
    CallbackOutcome.REPEATED: (200, "already recorded"),
    CallbackOutcome.UNKNOWN_TOKEN: (404, "unknown callback token"),
    CallbackOutcome.OTHER_TASK: (409, "this callback token belongs to another task"),
}


def create_app(config: ReceiverConfig) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ledger = await run_in_threadpool(Ledger, config.ledger)
        log.info("recording callbacks in %s", describe(config.ledger))
        try:
            yield
        finally:
            app.state.ledger.close()

    async def callback(request: Request) -> JSONResponse:
        token = request.path_params["path"].rsplit("/", 1)[-1]
        try:
            if not is_token(token):
                raise Refused(404, "unknown callback token")
            task_id, results = parse(await read_body(request, config.max_body_bytes))
            outcome = await run_in_threadpool(
                request.app.state.ledger.called_back, token_hash(token), task_id, results
            )
        except Refused as refused:
            log.warning("callback refused (%d): %s", refused.status, refused.detail)
            return JSONResponse({"ok": False, "detail": refused.detail}, refused.status)
        except LedgerUnavailable as exc:  # HiDream retries: the ledger may be back by then
            log.error("callback not recorded: %s", exc)
            return JSONResponse({"ok": False, "detail": "the ledger is unavailable"}, 503)
        status, detail = _ANSWERS[outcome]
        log.info("callback for task %s (token %s…): %s", task_id, token_hash(token)[:8], detail)
        return JSONResponse({"ok": status == 200, "detail": detail}, status)

    async def healthz(request: Request) -> JSONResponse:
        try:
            await run_in_threadpool(request.app.state.ledger.counts)
        except LedgerUnavailable:
            return JSONResponse({"ok": False, "ledger": "unavailable"}, 503)
        return JSONResponse({"ok": True})

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{path:path}", callback, methods=["POST"]),
    ]
    return FastAPI(
        title="img2svg callback receiver",
        routes=routes,
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, f"the body is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, f"the body is larger than {limit} bytes")
    return bytes(body)


def parse(raw: bytes) -> tuple[str, str]:
    """(main_task_id, sub_task_results as JSON) of a callback body, or Refused saying why."""
    try:
        body: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Refused(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refused(422, "the body is not a JSON object")
    task_id = body.get("main_task_id")
    if isinstance(task_id, bool) or not isinstance(task_id, str | int):
        raise Refused(422, "main_task_id is missing or not a string")
    task_id = str(task_id).strip()
    if not task_id or len(task_id) > MAX_ID_CHARS or not task_id.isprintable():
        raise Refused(422, "main_task_id is empty, too long or not printable")
    results = body.get("sub_task_results")
    if results is None:
        results = []
    if not isinstance(results, list) or len(results) > MAX_SUB_TASKS:
        raise Refused(422, f"sub_task_results is not a list of at most {MAX_SUB_TASKS}")
    if not all(isinstance(entry, dict) for entry in results):
        raise Refused(422, "sub_task_results holds something other than objects")
    return task_id, json.dumps(results, ensure_ascii=True, separators=(",", ":"))
