"""Refuse URLs that point into private networks (SSRF guard).

A service that fetches user-supplied URLs must not become a proxy into the network it runs on, so
every hostname is resolved and every address it resolves to is checked, not just the literal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class URLRefused(Exception):
    """The URL is malformed, not http(s), or resolves to a non-public address."""


def _is_non_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


async def is_private_host(host: str, port: int = 80) -> bool:
    """True when any address `host` resolves to is loopback, private, link-local or reserved."""
    try:
        return _is_non_public(host)
    except ValueError:
        pass
    try:
        addresses = await _resolve(host, port)
    except OSError as exc:
        raise URLRefused(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
    return any(_is_non_public(a) for a in addresses)


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise URLRefused unless `url` is an http(s) URL we may fetch."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise URLRefused(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise URLRefused(f"only http and https URLs are fetched, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise URLRefused("URL has no host")
    if parts.username or parts.password:
        raise URLRefused("URLs with credentials are not fetched")
    if allow_private:
        return
    if await is_private_host(parts.hostname, port):
        raise URLRefused(
            f"host {parts.hostname!r} is on a loopback or private network "
            "(allow it with --allow-private-urls)"
        )
