"""The HiDream-compatible img2svg service as a FastAPI application.

`create_app(config)` builds one independent instance (its own database, worker pool, limits and
metrics), which is what both `img2svg serve` and the tests run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from img2svg import __version__
from img2svg.api.codes import ErrorCode
from img2svg.api.paths import (
    API_PREFIX,
    BATCH_RESULTS_PATH,
    FILES_PREFIX,
    RESULTS_PATH,
    SUBMIT_PATH,
    SYNC_PATH,
)
from img2svg.engine.errors import EngineError
from img2svg.engine.pool import VectorizerPool
from img2svg.net.fetch import FetchLimits
from img2svg.service.auth import account_for, caller_scope
from img2svg.service.config import ServiceConfig
from img2svg.service.errors import ApiError
from img2svg.service.faults import FaultInjectionMiddleware, FaultPlan
from img2svg.service.inputs import DecodeGate, resolve_image
from img2svg.service.limits import Refusal, SlidingWindowLimiter
from img2svg.service.metrics import ServiceMetrics
from img2svg.service.protocol import (
    METRICS_DOC,
    SUBMIT_HEADERS,
    SVG_FILE_DOC,
    BatchAnswer,
    BatchBody,
    Health,
    ResultAnswer,
    SubmitAnswer,
    SubmitBody,
    SubmitRequest,
    SyncAnswer,
    SyncBody,
    api_doc,
    envelope,
    error_response,
    new_request_id,
    parse_batch,
    parse_submit,
    read_json,
)
from img2svg.service.runner import TaskRunner
from img2svg.service.store import WAITING, Task, TaskStore
from img2svg.service.views import task_result
from img2svg.svg import sanitize_svg
from img2svg.svg.check import InvalidSvg

log = logging.getLogger("img2svg.service")

_SUB_TASK_FILE = re.compile(r"^[0-9a-f-]{36}\.svg$")
_MAX_IDEMPOTENCY_KEY = 255
_CONCURRENCY_RETRY_AFTER_S = 2
_SUBMIT_DOC = api_doc(SubmitAnswer, body=SubmitBody, quota=True, headers=SUBMIT_HEADERS)


class Service:
    """The state one app instance owns; built in the lifespan, torn down after."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.metrics = ServiceMetrics()
        self.faults = FaultPlan(config.faults)
        self.rate = (
            SlidingWindowLimiter(config.rate_limit_per_minute)
            if config.rate_limit_per_minute
            else None
        )
        self.fetch_limits = FetchLimits(
            max_bytes=config.max_image_bytes,
            timeout_s=config.fetch_timeout_s,
            allow_private=config.allow_private_urls,
        )
        self._admit = asyncio.Lock()
        self.decodes = DecodeGate(config.max_concurrent_decodes, config.decode_wait_s)
        self.store: TaskStore
        self.pool: VectorizerPool
        self.http: httpx.AsyncClient
        self.runner: TaskRunner

    async def start(self) -> None:
        self.store = TaskStore(self.config.data_dir)
        self.pool = VectorizerPool(self.config.workers, self.config.engine)
        self.http = httpx.AsyncClient(
            headers={"User-Agent": f"img2svg-service/{__version__}"},
            timeout=httpx.Timeout(self.config.fetch_timeout_s),
        )
        self.runner = TaskRunner(self.config, self.store, self.pool, self.metrics, self.http)
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
        await self.http.aclose()
        self.decodes.close()
        self.pool.close()
        self.store.close()

    def account(self, request: Request) -> str:
        account = account_for(request.headers.get("authorization"), self.config.tokens)
        if account is None:
            raise ApiError(ErrorCode.UNAUTHORIZED)
        return account

    def check_concurrency(self, account: str) -> None:
        limit = self.config.max_concurrency
        if limit and self.store.count_open(account) >= limit:
            raise ApiError(
                ErrorCode.CONCURRENCY_LIMITED,
                f"{limit} tasks in progress",
                retry_after_s=_CONCURRENCY_RETRY_AFTER_S,
            )

    def acquire_rate(self, account: str) -> float | None:
        if self.rate is None:
            return None
        ticket = self.rate.try_acquire(account)
        if isinstance(ticket, Refusal):
            raise ApiError(
                ErrorCode.RATE_LIMITED,
                f"at most {self.rate.limit} per minute",
                retry_after_s=ticket.retry_after_s,
            )
        return ticket

    def release_rate(self, account: str, ticket: float | None) -> None:
        if self.rate is not None and ticket is not None:
            self.rate.release(account, ticket)

    async def resolve(self, image: str) -> bytes:
        return await resolve_image(
            image,
            client=self.http,
            fetch_limits=self.fetch_limits,
            decode_limits=self.config.decode_limits,
            gate=self.decodes,
        )

    async def submit(
        self, request: Request, account: str, body: SubmitRequest, idem_key: str | None
    ) -> Task:
        body_hash = hashlib.sha256(
            json.dumps([body.image, body.mode, body.notify_url]).encode()
        ).hexdigest()
        if idem_key is not None:
            replay = self._replay(account, idem_key, body_hash)
            if replay is not None:
                return replay
        self.check_concurrency(account)
        ticket = self.acquire_rate(account)
        try:
            image = await self.resolve(body.image)
            async with self._admit:
                if idem_key is not None:
                    replay = self._replay(account, idem_key, body_hash)
                    if replay is not None:
                        self.release_rate(account, ticket)
                        return replay
                self.check_concurrency(account)
                task = self.store.create(
                    Task(
                        task_id=str(uuid.uuid1()),
                        sub_task_id=str(uuid.uuid4()),
                        account=account,
                        user_id=request.headers.get("api-user-id") or None,
                        mode=body.mode,
                        status=WAITING,
                        completion=0.0,
                        outcome=self.faults.next_outcome(),
                        reason=None,
                        notify_url=body.notify_url,
                        base_url=str(request.base_url),
                        svg_bytes=None,
                        idem_key=idem_key,
                        body_hash=body_hash,
                        created_at=time.time(),
                        started_at=None,
                        finished_at=None,
                    ),
                    image,
                )
        except BaseException:
            self.release_rate(account, ticket)
            raise
        self.metrics.tasks_created.inc()
        self.runner.enqueue(task.task_id)
        log.info("task %s created (mode=%s, user=%s)", task.task_id, task.mode, task.user_id)
        return task

    def _replay(self, account: str, key: str, body_hash: str) -> Task | None:
        existing = self.store.by_idempotency_key(account, key)
        if existing is not None and existing.body_hash != body_hash:
            raise ApiError(ErrorCode.IDEMPOTENCY_CONFLICT)
        return existing

    def find(self, account: str, task_id: str) -> Task:
        task = self.store.get(task_id)
        if task is None or task.account != account:
            raise ApiError(ErrorCode.UNKNOWN_TASK, f"task_id {task_id!r}")
        return task


def create_app(config: ServiceConfig) -> FastAPI:
    service = Service(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="img2svg (HiDream-compatible)",
        version=__version__,
        description="Local implementation of HiDream's img2svg async interface, with vtracer.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(
        FaultInjectionMiddleware,
        plan=service.faults,
        prefixes=(API_PREFIX, FILES_PREFIX),
        on_fault=lambda kind: service.metrics.faults_injected.labels(kind=kind).inc(),
    )

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        service.metrics.refusals.labels(code=str(int(exc.code))).inc()
        return error_response(exc, request)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(ApiError(ErrorCode.INTERNAL_ERROR), request)

    @app.post(SUBMIT_PATH, summary="Submit a task", **_SUBMIT_DOC)
    async def submit(request: Request) -> dict:
        service.metrics.submit_requests.inc()
        account = service.account(request)
        body = parse_submit(await read_json(request, config.max_body_bytes))
        idem_key = request.headers.get("idempotency-key") if config.idempotency_keys else None
        if idem_key is not None:
            if not 0 < len(idem_key) <= _MAX_IDEMPOTENCY_KEY:
                raise ApiError(ErrorCode.INVALID_FIELD, "Idempotency-Key must be 1-255 characters")
            # Scoped by the presented token even when tokens are not checked (then every caller
            # is account "anonymous"), so one client's key never returns another client's task.
            idem_key = f"{caller_scope(request.headers.get('authorization'))}:{idem_key}"
        task = await service.submit(request, account, body, idem_key)
        return envelope(
            {"task_id": task.task_id, "sub_task_ids": [task.sub_task_id]}, new_request_id()
        )

    @app.get(RESULTS_PATH, summary="Fetch the result of one task", **api_doc(ResultAnswer))
    async def result(request: Request, task_id: str | None = None, request_id: str = "") -> dict:
        account = service.account(request)
        if not task_id:
            raise ApiError(ErrorCode.MISSING_FIELD, "'task_id' is required")
        task = service.find(account, task_id)
        return envelope(task_result(task, str(request.base_url)), new_request_id())

    @app.post(
        BATCH_RESULTS_PATH, summary="Fetch many results", **api_doc(BatchAnswer, body=BatchBody)
    )
    async def batch_results(request: Request) -> dict:
        account = service.account(request)
        ids = parse_batch(await read_json(request, 1024 * 1024), config.max_batch_ids)
        found = service.store.get_many(ids)
        results = []
        for task_id in ids:
            task = found.get(task_id)
            if task is None or task.account != account:
                results.append(
                    {
                        "task_id": task_id,
                        "sub_task_results": [],
                        "code": int(ErrorCode.UNKNOWN_TASK),
                        "message": ErrorCode.UNKNOWN_TASK.message("en"),
                    }
                )
            else:
                results.append(task_result(task, str(request.base_url)))
        return envelope(results, new_request_id())

    @app.post(
        SYNC_PATH, summary="Convert synchronously", **api_doc(SyncAnswer, body=SyncBody, quota=True)
    )
    async def sync(request: Request) -> dict:
        service.metrics.sync_requests.inc()
        account = service.account(request)
        body = parse_submit(await read_json(request, config.max_body_bytes), allow_notify_url=False)
        ticket = service.acquire_rate(account)
        try:
            image = await service.resolve(body.image)
        except BaseException:
            service.release_rate(account, ticket)
            raise
        started = time.perf_counter()
        try:
            svg = await service.pool.convert(image, body.mode)
        except EngineError as exc:
            raise ApiError(ErrorCode.CONVERSION_FAILED, exc.reason) from None
        finally:
            service.metrics.conversion_seconds.labels(mode=body.mode).observe(
                time.perf_counter() - started
            )
        try:  # answered to browsers too: only what draws
            clean = await asyncio.to_thread(sanitize_svg, svg.encode())
        except InvalidSvg as exc:
            raise ApiError(ErrorCode.CONVERSION_FAILED, f"not an SVG: {exc}") from None
        return envelope({"svg": clean.data.decode()}, new_request_id())

    @app.get(
        FILES_PREFIX + "/{name}",
        summary="Download a produced SVG",
        response_class=Response,
        responses=SVG_FILE_DOC,
    )
    async def svg_file(name: str) -> Response:
        if not _SUB_TASK_FILE.match(name):
            return JSONResponse({"detail": "not found"}, status_code=404)
        task = service.store.by_sub_task(name.removesuffix(".svg"))
        path = service.store.svg_path(name.removesuffix(".svg"))
        if task is None or task.status != 1 or not path.exists():
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(
            path,
            media_type="image/svg+xml",
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @app.get(
        "/metrics", summary="Prometheus metrics", response_class=Response, responses=METRICS_DOC
    )
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", summary="Liveness", response_model=Health)
    async def healthz() -> dict:
        # Clients read `idempotency_keys` to know whether resending a keyed submission is free.
        return {
            "status": "ok",
            "version": __version__,
            "workers": config.workers,
            "idempotency_keys": config.idempotency_keys,
        }

    return app
