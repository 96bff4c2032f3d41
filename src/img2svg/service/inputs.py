"""Turn the request's `image` field (base64, data: URI or URL) into validated image bytes.

All the refusals a user can cause with a bad image happen here, at request time, with a precise
code, so that a task only ever starts on bytes that Pillow has already fully decoded once.

That decode runs in the API process (on a thread), outside the engine workers' memory limit, and
a 40 Mpx image takes ~160 MB while it is decoded. `DecodeGate` bounds how many run at once; the
other callers wait for a slot, for a bounded time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from img2svg.api.codes import ErrorCode
from img2svg.engine.decode import DecodeLimits, probe_image
from img2svg.engine.errors import BadDimensions, NotAnImage, TruncatedImage
from img2svg.net.fetch import FetchError, FetchLimits, fetch_url
from img2svg.service.errors import ApiError

T = TypeVar("T")

_WHITESPACE = re.compile(r"\s+")

_FETCH_CODES = {
    "refused": ErrorCode.IMAGE_URL_REFUSED,
    "http_status": ErrorCode.IMAGE_URL_NOT_FOUND,
    "timeout": ErrorCode.IMAGE_URL_TIMEOUT,
    "too_large": ErrorCode.IMAGE_TOO_LARGE,
    "network": ErrorCode.IMAGE_URL_FAILED,
}


def is_url(image: str) -> bool:
    return image[:8].lower().startswith(("http://", "https://"))


def decode_base64(image: str, max_bytes: int) -> bytes:
    """Plain base64 or a `data:` URI; anything else is INVALID_BASE64."""
    payload = image
    if image.startswith("data:"):
        header, sep, payload = image.partition(",")
        if not sep or not header.endswith(";base64"):
            raise ApiError(ErrorCode.INVALID_BASE64, "data: URIs must be base64-encoded")
    payload = _WHITESPACE.sub("", payload)
    if len(payload) * 3 // 4 > max_bytes:
        raise ApiError(ErrorCode.IMAGE_TOO_LARGE, f"decoded image would exceed {max_bytes} bytes")
    try:
        data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(ErrorCode.INVALID_BASE64) from None
    if not data:
        raise ApiError(ErrorCode.INVALID_BASE64, "image is empty")
    return data


async def fetch_image(client: httpx.AsyncClient, url: str, limits: FetchLimits) -> bytes:
    try:
        fetched = await fetch_url(client, url, limits)
    except FetchError as exc:
        raise ApiError(_FETCH_CODES[exc.kind], exc.reason) from None
    if not fetched.content:
        raise ApiError(ErrorCode.NOT_AN_IMAGE, "the URL returned an empty body")
    return fetched.content


class DecodeGate:
    """Decodes on `slots` dedicated threads; a caller waits at most `wait_s` for one.

    A caller still waiting after `wait_s` is refused with SERVICE_UNAVAILABLE (HTTP 503, which
    clients read as "nothing was done") and a Retry-After, rather than queueing without end.
    The threads are its own, not anyio's shared pool of 40, so that their number bounds the
    decodes in flight even when a cancelled caller gives its slot back before its decode ends.
    """

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots = max(1, slots)
        self.wait_s = wait_s
        self._semaphore = asyncio.Semaphore(self.slots)
        self._threads = ThreadPoolExecutor(self.slots, thread_name_prefix="img2svg-decode")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            async with asyncio.timeout(self.wait_s):
                await self._semaphore.acquire()
        except TimeoutError:
            raise ApiError(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"{self.slots} images are being decoded and others are waiting",
                retry_after_s=max(1, math.ceil(self.wait_s / 10)),
            ) from None
        try:
            # A cancelled caller releases its slot while its decode may still run; the thread
            # count still bounds decodes, and the next caller queues on the executor.
            return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)
        finally:
            self._semaphore.release()

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


async def validate_image(
    data: bytes, limits: DecodeLimits, gate: DecodeGate
) -> tuple[int, int, str]:
    """Fully decode once on one of `gate`'s threads; map the engine's refusals to API codes."""
    try:
        return await gate.run(probe_image, data, limits)
    except NotAnImage as exc:
        raise ApiError(ErrorCode.NOT_AN_IMAGE, exc.reason) from None
    except TruncatedImage as exc:
        raise ApiError(ErrorCode.IMAGE_TRUNCATED, exc.reason) from None
    except BadDimensions as exc:
        raise ApiError(ErrorCode.BAD_DIMENSIONS, exc.reason) from None


async def resolve_image(
    image: str,
    *,
    client: httpx.AsyncClient,
    fetch_limits: FetchLimits,
    decode_limits: DecodeLimits,
    gate: DecodeGate,
) -> bytes:
    if is_url(image):
        data = await fetch_image(client, image, fetch_limits)
    else:
        data = decode_base64(image, fetch_limits.max_bytes)
    await validate_image(data, decode_limits, gate)
    return data
