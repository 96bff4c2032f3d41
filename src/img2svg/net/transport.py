"""Connect to the addresses the guard checked, never to a fresh DNS answer.

httpx resolves a URL's host when it connects. After `vet_url` has checked the host's addresses,
that second resolution could answer differently (DNS rebinding) and reach a private address.
`PinnedTransport` serves the requests of one vetted URL: its network backend dials the vetted
IPs, in order, whatever host it is asked for, while the request keeps the URL's host for the
Host header and for TLS (SNI and certificate verification).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager

import httpcore
import httpx

from img2svg.net.guard import VettedURL


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dial only `addresses` (the first that answers); the requested host name is not resolved."""

    def __init__(
        self, addresses: Sequence[str], inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.addresses = tuple(addresses)
        self.inner = inner or network_backend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception = httpcore.ConnectError(f"no vetted address for {host!r}")
        for address in self.addresses:
            try:
                return await self.inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("a pinned connection goes to a vetted IP, not a socket file")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def network_backend() -> httpcore.AsyncNetworkBackend:
    """The backend that really opens sockets (tests replace this function)."""
    return httpcore.AnyIOBackend()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # httpx's default verification, built once: loading the CA bundle costs milliseconds.
    return httpx.create_ssl_context()


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose connections go to `addresses` only; no proxy, no DNS."""

    def __init__(self, addresses: Sequence[str]) -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(), network_backend=PinnedBackend(addresses)
        )


@asynccontextmanager
async def pinned_client(
    client: httpx.AsyncClient, target: VettedURL
) -> AsyncIterator[httpx.AsyncClient]:
    """The client to `send` requests for `target` with (build them with `client`).

    `client` itself when the guard returned no addresses (private addresses allowed: connect as
    usual); otherwise a short-lived client that reaches only the vetted addresses. It ignores
    proxy settings from the environment, which would resolve the host again.
    """
    if not target.addresses:
        yield client
        return
    transport = PinnedTransport(target.addresses)
    async with httpx.AsyncClient(transport=transport, trust_env=False) as pinned:
        yield pinned
