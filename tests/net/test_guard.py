"""The SSRF guard: every spelling of a private address is refused before any connection."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterator

import httpx
import pytest

from img2svg.net import guard
from img2svg.net.fetch import FetchError, FetchLimits, fetch_url
from img2svg.net.guard import URLRefused, check_url, is_private_host, parse_ipv4_host, vet_url
from tests.net.conftest import RecordingBackend, ScriptedResolver

# Host part of the URL, and what the refusal must name.
REFUSED = {
    "127.0.0.1": "127.0.0.1 is loopback",
    "10.1.2.3": "10.1.2.3 is private",
    "172.16.0.1": "172.16.0.1 is private",
    "172.31.255.254": "172.31.255.254 is private",
    "192.168.1.1": "192.168.1.1 is private",
    "169.254.1.1": "169.254.1.1 is link-local",
    "169.254.169.254": "169.254.169.254 is a cloud metadata endpoint",
    "0.0.0.0": "0.0.0.0 is unspecified",
    "100.64.0.1": "100.64.0.1 is not globally reachable",
    "[::1]": "::1 is loopback",
    "[fe80::1]": "fe80::1 is link-local",
    "[fc00::1]": "fc00::1 is private",
    "[fd12:3456::1]": "fd12:3456::1 is private",
    "[fd00:ec2::254]": "fd00:ec2::254 is a cloud metadata endpoint",
    "[ff02::1]": "ff02::1 is multicast",
    "[::ffff:127.0.0.1]": "IPv4-mapped for 127.0.0.1, which is loopback",
    "[::ffff:a9fe:a9fe]": "IPv4-mapped for 169.254.169.254, which is a cloud metadata endpoint",
    "[64:ff9b::7f00:1]": "NAT64 for 127.0.0.1, which is loopback",
    "[64:ff9b::a00:1]": "NAT64 for 10.0.0.1, which is private",
    "[64:ff9b:1::a00:1]": "local-use NAT64 prefix",
    "[2002:7f00:1::]": "6to4 for 127.0.0.1, which is loopback",
    "[2002:c0a8:101::1]": "6to4 for 192.168.1.1, which is private",
    # Teredo: server 65.54.227.120, client 127.0.0.1 stored inverted (80ff:fffe).
    "[2001:0:4136:e378:8000:63bf:80ff:fffe]": "Teredo for 127.0.0.1, which is loopback",
    "[::7f00:1]": "deprecated IPv4-compatible address",
    "2130706433": "127.0.0.1 is loopback",  # decimal
    "0x7f000001": "127.0.0.1 is loopback",  # hex
    "0x7f.1": "127.0.0.1 is loopback",  # hex, shortened
    "0177.0.1": "127.0.0.1 is loopback",  # octal, shortened
    "127.1": "127.0.0.1 is loopback",  # shortened
    "127.0.0.1.": "127.0.0.1 is loopback",  # fully qualified
    "0xa9.0376.43518": "169.254.169.254 is a cloud metadata endpoint",  # mixed
    "0": "0.0.0.0 is unspecified",
    "0177.0.0.1": "malformed URL",  # httpx will not parse it, so it cannot be fetched either
}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that is really listening: a connection would be waiting in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock
        with pytest.raises(BlockingIOError):
            sock.accept()[0].close()  # anything accepted means the guard let a connection out


@pytest.mark.parametrize("host", REFUSED)
def test_private_forms_refused_without_a_connection(
    host: str,
    listener: socket.socket,
    backend: RecordingBackend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_lookup(host: str, port: int) -> list[str]:
        raise AssertionError(f"a literal address was looked up: {host}")

    monkeypatch.setattr(guard, "_resolve", no_lookup)
    url = f"http://{host}:{listener.getsockname()[1]}/x.png"
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, content=b"should not get here")

    async def go() -> FetchError:
        with pytest.raises(URLRefused, match=re.escape(REFUSED[host])):
            await check_url(url, allow_private=False)
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            with pytest.raises(FetchError) as caught:
                await fetch_url(client, url, FetchLimits(allow_private=False))
        return caught.value

    error = asyncio.run(go())
    assert error.kind == "refused" and REFUSED[host] in error.reason
    assert sent == [] and backend.dialled == []


def test_refusal_message_keeps_its_hint() -> None:
    with pytest.raises(URLRefused) as caught:
        asyncio.run(check_url("http://2130706433/", allow_private=False))
    assert "'2130706433' is on a loopback or private network" in str(caught.value)
    assert "--allow-private-urls" in str(caught.value)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.0x1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("1572395042", "93.184.216.34"),
        ("93.184.216.34.", "93.184.216.34"),
    ],
)
def test_numeric_hosts_read_as_inet_aton_does(host: str, address: str) -> None:
    assert parse_ipv4_host(host) == ipaddress.IPv4Address(address)
    assert str(parse_ipv4_host(host)) == socket.inet_ntoa(socket.inet_aton(host.rstrip(".")))


def test_bare_hex_prefix_reads_as_zero() -> None:
    # glibc's inet_aton rejects "0x" (so a resolver would look it up as a name); URL parsers
    # in browsers read it as 0. Reading it as 0.0.0.0 refuses it either way.
    assert parse_ipv4_host("0x") == ipaddress.IPv4Address("0.0.0.0")


@pytest.mark.parametrize("host", ["example.com", "1e3", "0x7g", "08.1", "1.2.3.4.5", "a.1"])
def test_names_are_not_numbers(host: str) -> None:
    assert parse_ipv4_host(host) is None


@pytest.mark.parametrize("host", ["256.0.0.1", "1.2.3.256", "1.16777216", "4294967296"])
def test_out_of_range_numbers_are_refused(host: str) -> None:
    with pytest.raises(URLRefused, match="malformed IPv4"):
        parse_ipv4_host(host)


def test_public_addresses_are_returned_for_pinning(resolver: ScriptedResolver) -> None:
    async def addresses(url: str) -> tuple[str, ...]:
        return (await vet_url(url, allow_private=False)).addresses

    assert asyncio.run(addresses("http://93.184.216.34/")) == ("93.184.216.34",)
    assert asyncio.run(addresses("http://1572395042:8080/")) == ("93.184.216.34",)
    # DNS64 networks give IPv4-only hosts a NAT64 address: a public one is fine.
    assert asyncio.run(addresses("http://[64:ff9b::5db8:d822]/")) == ("64:ff9b::5db8:d822",)
    resolver.answers = [["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]]
    both = asyncio.run(addresses("https://example.test/a.png"))
    assert both == ("2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34")  # resolver's order
    assert resolver.asked == ["example.test"]


def test_one_private_answer_refuses_the_name(resolver: ScriptedResolver) -> None:
    resolver.answers = [["93.184.216.34", "10.0.0.7"]]
    with pytest.raises(URLRefused, match=re.escape("10.0.0.7 is private")):
        asyncio.run(check_url("http://mixed.test/", allow_private=False))
    resolver.answers = [["::ffff:a9fe:a9fe"]]
    with pytest.raises(URLRefused, match="metadata"):
        asyncio.run(check_url("http://metadata.test/", allow_private=False))


def test_allowed_private_and_trusted_hosts_are_not_resolved_or_pinned(
    resolver: ScriptedResolver,
) -> None:
    allowed = asyncio.run(vet_url("http://intranet.test/", allow_private=True))
    trusted = asyncio.run(
        vet_url("http://127.0.0.1:9/x", allow_private=False, trusted_hosts={"127.0.0.1"})
    )
    assert allowed.addresses == () and trusted.addresses == ()
    assert (trusted.host, trusted.port) == ("127.0.0.1", 9)
    assert resolver.asked == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/a.png", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("example.com/a.png", "only http and https"),
        ("http:///a.png", "no host"),
        ("http://user:pw@example.com/", "credentials"),
        ("http://[::1/", "malformed URL"),
    ],
)
def test_malformed_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(URLRefused, match=message):
        asyncio.run(check_url(url, allow_private=True))


def test_is_private_host_reads_numeric_hosts(resolver: ScriptedResolver) -> None:
    assert asyncio.run(is_private_host("0177.0.0.1"))
    assert asyncio.run(is_private_host("::ffff:10.0.0.1"))
    assert not asyncio.run(is_private_host("public.test"))
    resolver.answers = [["64:ff9b::7f00:1"]]
    assert asyncio.run(is_private_host("nat64.test"))
