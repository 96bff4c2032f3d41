"""Download one untrusted URL with bounded size, time and redirects.

Redirects are followed by hand so that every hop passes the private-network guard, and each hop
connects to the addresses the guard checked (no second DNS lookup); the body is streamed so that
a huge or endless response costs at most `max_bytes`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import httpx

from img2svg.net.guard import URLRefused, vet_url
from img2svg.net.transport import pinned_client

FetchFailure = Literal["refused", "http_status", "timeout", "too_large", "network"]


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 20 * 1024 * 1024
    timeout_s: float = 20.0
    max_redirects: int = 5
    allow_private: bool = False
    # Hosts fetched even on a private network: the configured API's own host, so that result
    # URLs of a local service work while its redirects elsewhere are still checked.
    trusted_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Fetched:
    content: bytes
    final_url: str
    content_type: str | None
    etag: str | None
    last_modified: str | None


class FetchError(Exception):
    """The URL could not be fetched; `kind` says which way, `reason` says it in words."""

    def __init__(self, kind: FetchFailure, reason: str, status_code: int | None = None) -> None:
        super().__init__(reason)
        self.kind: FetchFailure = kind
        self.reason = reason
        self.status_code = status_code


async def fetch_url(
    client: httpx.AsyncClient, url: str, limits: FetchLimits = FetchLimits()
) -> Fetched:
    """GET `url` within `limits`; raise FetchError with a reason a person can act on."""
    try:
        async with asyncio.timeout(limits.timeout_s):
            return await _fetch(client, url, limits)
    except TimeoutError:
        raise FetchError("timeout", f"no complete answer within {limits.timeout_s:g} s") from None
    except URLRefused as exc:
        raise FetchError("refused", str(exc)) from None
    except httpx.InvalidURL as exc:  # e.g. a redirect to a Location httpx cannot parse
        raise FetchError("refused", f"malformed URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError("network", f"{type(exc).__name__}: {exc}".rstrip(": ")) from None


async def _fetch(client: httpx.AsyncClient, url: str, limits: FetchLimits) -> Fetched:
    for _ in range(limits.max_redirects + 1):
        target = await vet_url(
            url, allow_private=limits.allow_private, trusted_hosts=limits.trusted_hosts
        )
        request = client.build_request("GET", url)
        async with pinned_client(client, target) as sender:
            response = await sender.send(request, stream=True, follow_redirects=False)
            try:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError("http_status", "redirect without a Location header")
                    url = str(response.url.join(location))
                    continue
                if response.status_code != 200:
                    raise FetchError(
                        "http_status",
                        f"HTTP {response.status_code} from {response.url.host}",
                        response.status_code,
                    )
                content = await _read_bounded(response, limits.max_bytes)
                return Fetched(
                    content=content,
                    final_url=str(response.url),
                    content_type=response.headers.get("content-type"),
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                )
            finally:
                await response.aclose()
    raise FetchError("http_status", f"more than {limits.max_redirects} redirects")


async def _read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchError("too_large", f"image is {int(declared)} bytes, limit {max_bytes}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchError("too_large", f"image exceeds the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
