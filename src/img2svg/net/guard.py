"""Refuse URLs that point into private networks (SSRF guard).

A service that fetches user-supplied URLs must not become a proxy into the network it runs on.
`vet_url` resolves a URL's host once and checks every address it gets, then hands those
addresses back so the caller connects to exactly them (`img2svg.net.transport`): a second DNS
answer cannot steer the connection elsewhere (DNS rebinding). An address counts by what it
reaches: IPv4 carried inside IPv6 (mapped, NAT64, 6to4, Teredo) is checked too, and numeric
host spellings that `inet_aton` accepts (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) are read
as the address they stand for.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class URLRefused(Exception):
    """The URL is malformed, not http(s), or resolves to a non-public address."""


@dataclass(frozen=True)
class VettedURL:
    """A URL that passed the guard.

    `addresses` are the checked IPs of its host, in the resolver's order: connect to these and
    nothing else. Empty when private addresses were allowed: the host was not resolved here and
    the client connects as it always does.
    """

    url: str
    host: str
    port: int
    addresses: tuple[str, ...] = ()


# Cloud metadata services hand out credentials to whoever asks from inside the machine.
# 169.254.169.254 (AWS, GCP, Azure, OpenStack...) and fd00:ec2::254 (AWS over IPv6) are in
# non-public ranges anyway; they are named so the refusal says what they are. 168.63.129.16 is
# Azure's platform endpoint, a public address reachable only from inside Azure.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "168.63.129.16")
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local use, never global
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d (:: and ::1 aside)

_NUMBER = re.compile(r"0x[0-9a-f]*|0[0-7]*|[1-9][0-9]*", re.IGNORECASE)


def parse_ipv4_host(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a numeric host stands for, as `inet_aton` reads it; None for a name.

    One to four dot-separated numbers, each decimal, octal (leading 0) or hex (leading 0x); the
    last one fills the remaining bytes: `127.1` is 127.0.0.1, `2130706433` is 127.0.0.1.
    """
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # a trailing dot (fully qualified) does not change the address
    if not 1 <= len(labels) <= 4 or not all(_NUMBER.fullmatch(label) for label in labels):
        return None
    values = [_number(label) for label in labels]
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        raise URLRefused(f"malformed IPv4 address {host!r}")
    packed = 0
    for v in head:
        packed = packed << 8 | v
    return ipaddress.IPv4Address(packed << 8 * (5 - len(values)) | last)


def _number(label: str) -> int:
    if label[:2].lower() == "0x":
        return int(label[2:] or "0", 16)
    if len(label) > 1 and label.startswith("0"):
        return int(label, 8)
    return int(label)


def _literal(host: str) -> IPAddress | None:
    """The address `host` spells out (IPv6, dotted IPv4 or another inet_aton form), or None."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return parse_ipv4_host(host)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[tuple[str, ipaddress.IPv4Address]]:
    """IPv4 addresses an IPv6 address carries, with the name of the mechanism that carries it."""
    found: list[tuple[str, ipaddress.IPv4Address]] = []
    if ip.ipv4_mapped is not None:
        found.append(("IPv4-mapped", ip.ipv4_mapped))
    if ip in _NAT64:
        found.append(("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
    if ip.sixtofour is not None:
        found.append(("6to4", ip.sixtofour))
    if ip.teredo is not None:
        server, client = ip.teredo  # the client address is stored inverted; this undoes that
        found += [("Teredo", client), ("Teredo", server)]
    return found


def refusal_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address we may connect to, or None when it is."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata endpoint"
    if ip.is_loopback:
        return "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return "in the local-use NAT64 prefix 64:ff9b:1::/48"
        if ip in _IPV4_COMPATIBLE:
            return "a deprecated IPv4-compatible address"
        for mechanism, inner in _embedded_ipv4(ip):
            why = refusal_reason(inner)
            if why is not None:
                return f"{mechanism} for {inner}, which is {why}"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not globally reachable"
    return None


async def _resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to, in the resolver's order of preference."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _addresses(host: str, port: int) -> list[IPAddress]:
    literal = _literal(host)
    if literal is not None:
        return [literal]
    try:
        resolved = await _resolve(host, port)
    except OSError as exc:
        raise URLRefused(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
    if not resolved:
        raise URLRefused(f"host {host!r} has no address")
    return [ipaddress.ip_address(a) for a in resolved]


async def is_private_host(host: str, port: int = 80) -> bool:
    """True when any address `host` resolves to is loopback, private, link-local or reserved."""
    return any(refusal_reason(ip) is not None for ip in await _addresses(host, port))


async def vet_url(
    url: str, *, allow_private: bool, trusted_hosts: Collection[str] = ()
) -> VettedURL:
    """Check `url` and return the addresses to connect to; raise URLRefused when we may not.

    The host is resolved once, here. With `allow_private`, or for a host in `trusted_hosts`,
    nothing is resolved or checked beyond the URL's form, and no addresses are returned.
    """
    # httpx's own parser, so the host checked is the host httpx would connect to.
    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError) as exc:
        raise URLRefused(f"malformed URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise URLRefused(f"only http and https URLs are fetched, not {parsed.scheme or 'none'!r}")
    if not host:
        raise URLRefused("URL has no host")
    if parsed.userinfo:
        raise URLRefused("URLs with credentials are not fetched")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if allow_private or host in trusted_hosts or parsed.host in trusted_hosts:
        return VettedURL(url, host, port)
    addresses = await _addresses(host, port)
    for ip in addresses:
        why = refusal_reason(ip)
        if why is not None:
            raise URLRefused(
                f"host {parsed.host!r} is on a loopback or private network: {ip} is {why} "
                "(allow it with --allow-private-urls)"
            )
    return VettedURL(url, host, port, tuple(str(ip) for ip in addresses))


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise URLRefused unless `url` is an http(s) URL we may fetch."""
    await vet_url(url, allow_private=allow_private)
