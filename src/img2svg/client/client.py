"""An async client for HiDream's img2svg interface (and `img2svg serve`, which speaks it too).

One `AsyncImg2SvgClient` holds one pooled httpx connection pool. Transient faults are retried
here with backoff and Retry-After; what remains is raised as a typed error (see `errors`); what
each answer means is read in one place (`answers`). Submissions are retried only when a retry
cannot create a second, billed task: when the request never reached the server, or when it
carries an Idempotency-Key that the server is known to dedupe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from img2svg import __version__
from img2svg.api.paths import BATCH_RESULTS_PATH, RESULTS_PATH, SUBMIT_PATH, SYNC_PATH
from img2svg.client.answers import (
    UNKNOWN_TASK_CODES,
    raise_for_http_status,
    read_batch,
    read_envelope,
    read_single,
    read_submission,
)
from img2svg.client.errors import (
    ApiRefused,
    BadResponse,
    ClientError,
    Img2SvgError,
    NetworkError,
    RateLimited,
    ResultUrlGone,
    ServerError,
    SubmissionsHalted,
    TransientError,
)
from img2svg.client.models import SubmittedTask, TaskView
from img2svg.client.throttle import Throttle
from img2svg.net.fetch import FetchError, FetchLimits, fetch_url

log = logging.getLogger("img2svg.client")

HIDREAM_URL = "https://www.hidreamai.com"
MAX_BATCH_IDS = 100
T = TypeVar("T")
BeforeSend = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying.

    Faults (network, 5xx) are retried `attempts` times with exponential backoff. Quota answers
    (429) are not faults: they are waited out for up to `max_quota_wait_s` in total per request,
    each wait as long as the server's Retry-After but never shorter than the backoff of that
    many consecutive 429s (a `Retry-After: 0` must not become a hot loop).
    """

    attempts: int = 6
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 120.0
    max_quota_wait_s: float = 3600.0

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))

    def delay(self, attempt: int, error: TransientError) -> float:
        if isinstance(error, RateLimited):
            return min(
                max(error.retry_after_s or 0.0, self.backoff(attempt)), self.max_retry_after_s
            )
        if error.retry_after_s is not None:
            return min(error.retry_after_s, self.max_retry_after_s)
        return self.backoff(attempt) * (0.5 + random.random() / 2)


class AsyncImg2SvgClient:
    """Typed calls for submit, result, batch result, sync and download; use as `async with`."""

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
        unknown_task_codes: Collection[int] = UNKNOWN_TASK_CODES,
        allow_private_downloads: bool = False,
    ) -> None:
        """`honours_idempotency_keys`: the server returns the same task for a repeated
        Idempotency-Key (img2svg serve says so; HiDream does not), which makes it safe to
        repeat a submission whose answer was lost. `unknown_task_codes`: the per-task codes
        that mean "no such task". Result URLs are downloaded from the API's own host, or from
        public hosts only unless `allow_private_downloads`."""
        self.honours_idempotency_keys = honours_idempotency_keys
        self.unknown_task_codes = frozenset(unknown_task_codes)
        headers = {"User-Agent": f"img2svg/{__version__}", "X-accept-language": language}
        if user_id:
            headers["API-User-ID"] = user_id
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.throttle = throttle or Throttle()
        api_host = urlsplit(self.base_url).hostname or ""
        self.download_limits = FetchLimits(
            max_bytes=max_download_bytes,
            timeout_s=timeout_s,
            allow_private=allow_private_downloads,
            trusted_hosts=frozenset({api_host}),
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_connections),
        )
        # Result URLs get no Authorization header: the token goes to the API only.
        self._downloads = httpx.AsyncClient(
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
        await self._downloads.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    # -- the API calls ------------------------------------------------------------------------

    async def submit(
        self,
        image: str,
        mode: str,
        *,
        notify_url: str | None = None,
        idempotency_key: str | None = None,
        before_send: BeforeSend | None = None,
        window_key: str | None = None,
    ) -> SubmittedTask:
        """Create one (billed) task. `before_send` is awaited right before each POST goes on
        the wire, after every wait: the caller records there that a task may now exist.
        `window_key` names the submission in the run's task window: it waits for room there,
        and keeps its slot once the task exists (whoever sees the task end gives it back)."""
        window = self.throttle.window
        body: dict[str, Any] = {"image": image, "mode": mode}
        if notify_url:
            body["notify_url"] = notify_url
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}

        async def once() -> SubmittedTask:
            if window_key is not None:
                await window.acquire(window_key)
            await self.throttle.wait_for_submission_slot()
            if self.throttle.halted:
                raise SubmissionsHalted(self.throttle.halted)
            try:
                result = await self._call(
                    "POST", SUBMIT_PATH, json_body=body, headers=headers, before_send=before_send
                )
            except RateLimited:
                if window_key is not None:  # wait for room again, without holding a slot
                    window.release(window_key, finished=False)
                raise
            task = read_submission(result)
            if window_key is not None:
                window.confirm(window_key)
            return task

        keyed = idempotency_key is not None and self.honours_idempotency_keys
        return await self._with_retries(once, safe_to_repeat=keyed, submission=True)

    async def result(self, task_id: str) -> TaskView:
        async def once() -> TaskView:
            try:
                result = await self._call("GET", RESULTS_PATH, params={"task_id": task_id})
            except ApiRefused as refused:
                return read_single(task_id, refused, None, unknown_codes=self.unknown_task_codes)
            return read_single(task_id, None, result, unknown_codes=self.unknown_task_codes)

        return await self._with_retries(once, safe_to_repeat=True)

    async def results(self, task_ids: Sequence[str]) -> list[TaskView]:
        """Batch query, chunked to the API's size limit; one view per id, in order."""
        out: list[TaskView] = []
        for start in range(0, len(task_ids), MAX_BATCH_IDS):
            chunk = list(task_ids[start : start + MAX_BATCH_IDS])

            async def once(chunk: list[str] = chunk) -> list[TaskView]:
                result = await self._call(
                    "POST", BATCH_RESULTS_PATH, json_body={"task_id_list": chunk}
                )
                return read_batch(result, chunk, unknown_codes=self.unknown_task_codes)

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
        """Fetch a result SVG, following redirects (each hop passes the private-network guard,
        the API's own host excepted). `ResultUrlGone` (403/404/410) means the link expired:
        ask the task for a fresh one."""

        async def once() -> bytes:
            async with self.throttle.request_slot():
                try:
                    fetched = await fetch_url(self._downloads, url, self.download_limits)
                except FetchError as exc:
                    raise _download_error(exc) from None
            return fetched.content

        return await self._with_retries(once, safe_to_repeat=True)

    # -- plumbing -----------------------------------------------------------------------------

    async def _with_retries(
        self, call: Callable[[], Awaitable[T]], *, safe_to_repeat: bool, submission: bool = False
    ) -> T:
        faults = 0
        quota_waits = 0
        quota_waited = 0.0
        tries = 0
        reached = False  # whether any attempt so far may have been acted on by the server
        while True:
            tries += 1
            try:
                result = await call()
            except Img2SvgError as error:
                error.attempts = tries
                reached = reached or error.maybe_processed
                error.reached_server = reached
                if isinstance(error, RateLimited):
                    quota_waits += 1
                    delay = self.retry.delay(quota_waits, error)
                    if quota_waited + delay > self.retry.max_quota_wait_s:
                        raise
                    quota_waited += delay
                    self.throttle.rate_limited(delay, submission=submission)
                elif isinstance(error, TransientError):
                    faults += 1
                    if faults >= self.retry.attempts or not (
                        safe_to_repeat or not error.maybe_processed
                    ):
                        raise
                    delay = self.retry.delay(faults, error)
                    log.info("retrying in %.1f s after %s (attempt %d)", delay, error, tries)
                else:
                    raise
            else:
                if isinstance(result, SubmittedTask):
                    result = SubmittedTask(result.task_id, result.sub_task_ids, attempts=tries)
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
        before_send: BeforeSend | None = None,
    ) -> Any:
        content = json.dumps(json_body).encode() if json_body is not None else None
        request_headers = {**self._auth(), **(headers or {})}
        if content is not None:
            request_headers["Content-Type"] = "application/json"
        async with self.throttle.request_slot():
            if before_send is not None:
                await before_send()
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
        raise_for_http_status(response.status_code, payload, _retry_after(response))
        return read_envelope(f"{method} {path}", payload)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _network_error(exc: httpx.HTTPError) -> Img2SvgError:
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    name = type(exc).__name__
    detail = str(exc)
    return NetworkError(f"{name}: {detail}" if detail else name, maybe_processed=not never_sent)


def _download_error(exc: FetchError) -> Img2SvgError:
    status = exc.status_code
    if exc.kind == "http_status" and status in (403, 404, 410):
        return ResultUrlGone(f"result URL: {exc.reason}", status_code=status)
    if exc.kind == "http_status" and status is not None and status >= 500:
        return ServerError(f"result URL: {exc.reason}", status_code=status)
    if exc.kind in ("timeout", "network"):
        return NetworkError(f"result URL: {exc.reason}")
    return ClientError(f"result URL: {exc.reason}", status_code=status or 0)
