"""fetch_url: each hop is checked, and the connection goes to the address that was checked."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from img2svg.net.fetch import Fetched, FetchError, FetchLimits, fetch_url
from img2svg.net.transport import PinnedTransport
from tests.helpers import LoopbackServer, Route
from tests.net.conftest import RecordingBackend, ScriptedResolver, ok

PUBLIC = "93.184.216.34"
STRICT = FetchLimits(allow_private=False, timeout_s=5)


def fetch(url: str, limits: FetchLimits = STRICT) -> Fetched:
    async def go() -> Fetched:
        async with httpx.AsyncClient(headers={"User-Agent": "img2svg-test"}) as client:
            return await fetch_url(client, url, limits)

    return asyncio.run(go())


def fetch_error(url: str, limits: FetchLimits = STRICT) -> FetchError:
    with pytest.raises(FetchError) as caught:
        fetch(url, limits)
    return caught.value


def test_redirect_from_a_trusted_host_to_a_private_one_is_refused(web: LoopbackServer) -> None:
    port = web.httpd.server_address[1]
    web.add("/x", Route(body=b"private bytes"))
    web.add("/start", Route(status=302, headers={"Location": f"http://localhost:{port}/x"}))
    web.add("/numeric", Route(status=302, headers={"Location": f"http://2130706433:{port}/x"}))
    web.add("/same-host", Route(status=302, headers={"Location": "/x"}))
    trusted = FetchLimits(allow_private=False, trusted_hosts=frozenset({"127.0.0.1"}))

    assert fetch(web.url + "/x", trusted).content == b"private bytes"  # the trusted host works
    assert fetch(web.url + "/same-host", trusted).content == b"private bytes"
    web.requests.clear()

    error = fetch_error(web.url + "/start", trusted)
    assert error.kind == "refused" and "'localhost' is on a loopback" in error.reason
    error = fetch_error(web.url + "/numeric", trusted)
    assert error.kind == "refused" and "127.0.0.1 is loopback" in error.reason
    assert web.requests == [("GET", "/start"), ("GET", "/numeric")]  # /x never asked for


def test_untrusted_loopback_is_refused_and_allowed_private_still_works(
    web: LoopbackServer,
) -> None:
    url = web.add("/x", Route(body=b"bytes"))
    assert fetch_error(url).kind == "refused"
    assert web.requests == []
    assert fetch(url, FetchLimits(allow_private=True)).content == b"bytes"


def test_dns_rebinding_dials_the_checked_address(
    resolver: ScriptedResolver, backend: RecordingBackend, no_dns: None
) -> None:
    # The first answer is public, every later one is loopback: a second lookup at connect
    # time would reach 127.0.0.1. The connection must go to the address the guard checked.
    resolver.answers = [[PUBLIC], ["127.0.0.1"]]
    backend.answers[PUBLIC] = ok(b"public bytes")

    fetched = fetch("http://rebind.test/a.png")
    assert fetched.content == b"public bytes"
    assert fetched.final_url == "http://rebind.test/a.png"
    assert resolver.asked == ["rebind.test"]  # resolved once, by the guard
    assert backend.dialled == [(PUBLIC, 80)]
    request = b"".join(backend.written)
    assert request.startswith(b"GET /a.png HTTP/1.1\r\n")
    assert b"\r\nHost: rebind.test\r\n" in request  # the URL's host, not the IP
    assert b"\r\nUser-Agent: img2svg-test\r\n" in request  # the caller's client settings

    # The next fetch sees the rebound answer, and it is refused before any connection.
    assert fetch_error("http://rebind.test/a.png").kind == "refused"
    assert backend.dialled == [(PUBLIC, 80)]


def test_tls_is_checked_against_the_url_host_not_the_ip(
    resolver: ScriptedResolver, backend: RecordingBackend, no_dns: None
) -> None:
    backend.answers[PUBLIC] = b""
    error = fetch_error("https://rebind.test:8443/a.png")
    assert error.kind == "network"
    assert backend.dialled == [(PUBLIC, 8443)]
    assert backend.tls_names == ["rebind.test"]  # SNI and certificate name


def test_pinned_connection_tries_each_vetted_address_and_nothing_else(
    resolver: ScriptedResolver, backend: RecordingBackend, no_dns: None
) -> None:
    v6 = "2606:2800:220:1:248:1893:25c8:1946"
    resolver.answers = [[v6, PUBLIC]]
    assert fetch_error("http://down.test/").kind == "network"
    assert backend.dialled == [(v6, 80), (PUBLIC, 80)]

    backend.dialled.clear()
    backend.answers[PUBLIC] = ok()
    assert fetch("http://down.test/").content == b"abc"
    assert backend.dialled == [(v6, 80), (PUBLIC, 80)]


def test_every_redirect_hop_is_pinned(
    resolver: ScriptedResolver, backend: RecordingBackend, no_dns: None
) -> None:
    other = "93.184.216.35"
    resolver.answers = [[PUBLIC], [other], ["127.0.0.1"]]
    backend.answers[PUBLIC] = (
        b"HTTP/1.1 302 Found\r\nLocation: http://cdn.test/b.png\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    backend.answers[other] = ok(b"from the cdn")
    fetched = fetch("http://origin.test/a.png")
    assert (fetched.content, fetched.final_url) == (b"from the cdn", "http://cdn.test/b.png")
    assert resolver.asked == ["origin.test", "cdn.test"]
    assert backend.dialled == [(PUBLIC, 80), (other, 80)]


def test_pinned_transport_reaches_a_real_server_without_resolving(
    web: LoopbackServer, no_dns: None
) -> None:
    port = web.httpd.server_address[1]
    web.add("/x", Route(body=b"pinned"))

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=PinnedTransport(["127.0.0.1"])) as client:
            return await client.get(f"http://name.invalid:{port}/x")

    response = asyncio.run(go())
    assert (response.status_code, response.content) == (200, b"pinned")
    assert web.requests == [("GET", "/x")]
