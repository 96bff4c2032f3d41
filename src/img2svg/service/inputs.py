"""Turn the request's `image` field (base64, data: URI or URL) into validated image bytes.

All the refusals a user can cause with a bad image happen here, at request time, with a precise
code, so that a task only ever starts on bytes that Pillow has already fully decoded once.
"""

from __future__ import annotations

import base64
import binascii
import re

import anyio
import httpx

from img2svg.api.codes import ErrorCode
from img2svg.engine.decode import DecodeLimits, probe_image
from img2svg.engine.errors import BadDimensions, NotAnImage, TruncatedImage
from img2svg.net.fetch import FetchError, FetchLimits, fetch_url
from img2svg.service.errors import ApiError

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


async def validate_image(data: bytes, limits: DecodeLimits) -> tuple[int, int, str]:
    """Fully decode once in a worker thread; map the engine's refusals to API codes."""
    try:
        return await anyio.to_thread.run_sync(probe_image, data, limits)
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
) -> bytes:
    if is_url(image):
        data = await fetch_image(client, image, fetch_limits)
    else:
        data = decode_base64(image, fetch_limits.max_bytes)
    await validate_image(data, decode_limits)
    return data
