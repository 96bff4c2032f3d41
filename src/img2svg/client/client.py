"""An async client for HiDream's img2svg interface (and `img2svg serve`, which speaks it too).

One `AsyncImg2SvgClient` holds one pooled httpx connection pool. Transient faults are retried
here with backoff and Retry-After; what remains is raised as a typed error (see `errors`).
Submissions are retried only when a retry cannot create a second, billed task: when the request
never reached the server, or when it carries an Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from img2svg import __version__
from img2svg.api.codes import ErrorCode
from img2svg.api.paths import BATCH_RESULTS_PATH, RESULTS_PATH, SUBMIT_PATH, SYNC_PATH
from img2svg.client.errors import (
    ApiRefused,
    BadResponse,
    ClientError,
    Img2SvgError,
    NetworkError,
    RateLimited,
    ServerError,
    SubmissionsHalted,
    TransientError,
    Unauthorized,
)
from img2svg.client.models import SubmittedTask, TaskResult
from img2svg.client.throttle import Throttle

log = logging.getLogger("img2svg.client")

HIDREAM_URL = "https://www.hidreamai.com"
MAX_BATCH_IDS = 100
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying.

    Faults (network, 5xx) are retried `attempts` times with exponential backoff. Quota answers
    (429) are not faults: they are waited out, as the server's Retry-After says, for up to
    `max_quota_wait_s` in total per request.
    """

    attempts: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_quota_wait_s: float = 3600.0

    def delay(self, attempt: int, error: TransientError) -> float:
        if error.retry_after_s is not None:
            return min(error.retry_after_s, self.max_retry_after_s)
        base = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


class AsyncImg2SvgClient:
    """Typed calls for submit, result, batch result and sync; use as `async with`."""

    def __init__(
        self,
        base_url: str = HIDREAM_URL,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        max_connections: int = 20,
        language: str = "en",
        user_id: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        throttle: Throttle | None = None,
        max_download_bytes: int = 50 * 1024 * 1024,
        honours_idempotency_keys: bool = False,
    ) -> None:
        """`honours_idempotency_keys`: the server returns the same task for a repeated
        Idempotency-Key (img2svg serve does; HiDream does not say so), which makes it safe to
        repeat a submission whose answer was lost."""
        self.honours_idempotency_keys = honours_idempotency_keys
        headers = {"User-Agent": f"img2svg/{__version__}", "X-accept-language": language}
        if user_id:
            headers["API-User-ID"] = user_id
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.throttle = throttle or Throttle()
        self.max_download_bytes = max_download_bytes
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections),
        )

    def __repr__(self) -> str:
        token = "***" if self._token else None
        return f"AsyncImg2SvgClient(base_url={self.base_url!r}, token={token})"

    async def __aenter__(self) -> AsyncImg2SvgClient:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # -- the four API calls -------------------------------------------------------------------

    async def submit(
        self,
        image: str,
        mode: str,
        *,
        notify_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> SubmittedTask:
        body: dict[str, Any] = {"image": image, "mode": mode}
        if notify_url:
            body["notify_url"] = notify_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}

        async def once() -> SubmittedTask:
            await self.throttle.wait_for_submission_slot()
            if self.throttle.halted:
                raise SubmissionsHalted(self.throttle.halted)
            result = await self._call("POST", SUBMIT_PATH, json_body=body, headers=headers)
            return _parse(SubmittedTask, result)

        keyed = idempotency_key is not None and self.honours_idempotency_keys
        return await self._with_retries(once, safe_to_repeat=keyed)

    async def result(self, task_id: str) -> TaskResult:
        async def once() -> TaskResult:
            result = await self._call("GET", RESULTS_PATH, params={"task_id": task_id})
            return _parse(TaskResult, result)

        return await self._with_retries(once, safe_to_repeat=True)

    async def results(self, task_ids: Sequence[str]) -> list[TaskResult]:
        """Batch query, chunked to the API's size limit; one entry per id, in order."""
        out: list[TaskResult] = []
        for start in range(0, len(task_ids), MAX_BATCH_IDS):
            chunk = list(task_ids[start : start + MAX_BATCH_IDS])

            async def once(chunk: list[str] = chunk) -> list[TaskResult]:
                result = await self._call(
                    "POST", BATCH_RESULTS_PATH, json_body={"task_id_list": chunk}
                )
                if not isinstance(result, list):
                    raise BadResponse("batch result is not a list")
                return [_parse(TaskResult, item) for item in result]

            out.extend(await self._with_retries(once, safe_to_repeat=True))
        return out

    async def convert_sync(self, image: str, mode: str) -> str:
        async def once() -> str:
            await self.throttle.wait_for_submission_slot()
            result = await self._call("POST", SYNC_PATH, json_body={"image": image, "mode": mode})
            svg = result.get("svg") if isinstance(result, dict) else None
            if not isinstance(svg, str):
                raise BadResponse("sync result has no 'svg' string")
            return svg

        return await self._with_retries(once, safe_to_repeat=False)

    async def download(self, url: str) -> bytes:
        """Fetch a result SVG (no auth header: result URLs are public, short-lived links)."""

        async def once() -> bytes:
            async with self.throttle.request_slot():
                try:
                    async with self._http.stream("GET", url) as response:
                        self._raise_for_http_status(response, await _peek_json(response))
                        chunks, size = [], 0
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > self.max_download_bytes:
                                raise ClientError(
                                    f"SVG larger than {self.max_download_bytes} bytes",
                                    status_code=response.status_code,
                                )
                            chunks.append(chunk)
                        return b"".join(chunks)
                except httpx.HTTPError as exc:
                    raise _network_error(exc) from None

        return await self._with_retries(once, safe_to_repeat=True)

    # -- plumbing -----------------------------------------------------------------------------

    async def _with_retries(self, call: Callable[[], Awaitable[T]], *, safe_to_repeat: bool) -> T:
        faults = 0
        quota_waited = 0.0
        tries = 0
        reached = False  # whether any attempt so far may have been acted on by the server
        while True:
            tries += 1
            try:
                result = await call()
            except Img2SvgError as error:
                error.attempts = tries
                reached = reached or (
                    isinstance(error, TransientError) and not _surely_not_processed(error)
                )
                error.reached_server = reached
                if isinstance(error, RateLimited):
                    delay = self.retry.delay(faults + 1, error)
                    if quota_waited + delay > self.retry.max_quota_wait_s:
                        raise
                    quota_waited += delay
                    self.throttle.pause(delay)
                elif isinstance(error, TransientError):
                    faults += 1
                    if faults >= self.retry.attempts or not (
                        safe_to_repeat or _surely_not_processed(error)
                    ):
                        raise
                    delay = self.retry.delay(faults, error)
                    log.info("retrying in %.1f s after %s (attempt %d)", delay, error, tries)
                else:
                    raise
            else:
                if isinstance(result, SubmittedTask):
                    result = result.model_copy(update={"attempts": tries})
                return result
            await asyncio.sleep(delay)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        content = json.dumps(json_body).encode() if json_body is not None else None
        request_headers = {**self._auth(), **(headers or {})}
        if content is not None:
            request_headers["Content-Type"] = "application/json"
        async with self.throttle.request_slot():
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=request_headers
                )
            except httpx.HTTPError as exc:
                raise _network_error(exc) from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        self._raise_for_http_status(response, payload)
        if not isinstance(payload, dict) or "code" not in payload:
            raise BadResponse(f"{method} {path}: answer is not an API envelope")
        code = payload["code"]
        if code != 0:
            message = str(payload.get("message", ""))
            try:
                known = ErrorCode(code)
            except ValueError:
                known = None
            if known is not None and known.retryable:
                raise ServerError(f"API error {code}: {message}", status_code=response.status_code)
            raise ApiRefused(int(code), message)
        return payload.get("result")

    @staticmethod
    def _raise_for_http_status(response: httpx.Response, payload: Any) -> None:
        status = response.status_code
        if status < 400:
            return
        message = f"HTTP {status}"
        if isinstance(payload, dict) and payload.get("message"):
            message += f": {payload['message']}"
        retry_after = _retry_after(response)
        if status == 429:
            raise RateLimited(message, retry_after_s=retry_after)
        if status >= 500:
            raise ServerError(message, status_code=status, retry_after_s=retry_after)
        if status in (401, 403):
            raise Unauthorized(message)
        raise ClientError(message, status_code=status)


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], payload: Any) -> M:
    """A code-0 answer of the wrong shape is a bad response, not a crash of the caller."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        problems = exc.error_count()
        raise BadResponse(f"unexpected {model.__name__} shape ({problems} problems)") from None


async def _peek_json(response: httpx.Response) -> Any:
    if response.status_code < 400:
        return None
    await response.aread()
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _surely_not_processed(error: TransientError) -> bool:
    """True when the server cannot have acted on the request, so repeating it costs nothing."""
    if isinstance(error, NetworkError):
        return not error.maybe_processed
    if isinstance(error, ServerError):
        return error.status_code == 503
    return isinstance(error, RateLimited)


def _network_error(exc: httpx.HTTPError) -> Img2SvgError:
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    name = type(exc).__name__
    detail = str(exc)
    return NetworkError(f"{name}: {detail}" if detail else name, maybe_processed=not never_sent)
