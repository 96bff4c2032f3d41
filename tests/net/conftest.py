"""Doubles for the network edge: a scripted resolver and a backend that records what it dials.

Nothing here opens a socket to anything but loopback: the recording backend answers from
memory, and `no_dns` makes any lookup other than the scripted one fail the test.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import pytest

from img2svg.net import guard, transport


class FakeStream(httpcore.AsyncNetworkStream):
    """A connection that replays `answer` and keeps what was written to it."""

    def __init__(self, backend: RecordingBackend, answer: bytes) -> None:
        self.backend = backend
        self.unread = answer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        chunk, self.unread = self.unread[:max_bytes], self.unread[max_bytes:]
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.backend.written.append(bytes(buffer))

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self.backend.tls_names.append(server_hostname)
        raise httpcore.ConnectError("test double: no TLS handshake")

    def get_extra_info(self, info: str) -> Any:
        return None


@dataclass
class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records every (address, port) dialled; refuses all unless `answers` says what to reply."""

    answers: dict[str, bytes] = field(default_factory=dict)
    dialled: list[tuple[str, int]] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)
    tls_names: list[str | None] = field(default_factory=list)

    async def connect_tcp(self, host: str, port: int, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        self.dialled.append((host, port))
        if host not in self.answers:
            raise httpcore.ConnectError(f"test double: no connection to {host}")
        return FakeStream(self, self.answers[host])

    async def connect_unix_socket(self, path: str, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        pass


def ok(body: bytes = b"abc") -> bytes:
    """A complete HTTP/1.1 answer that closes the connection."""
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


@pytest.fixture
def backend(monkeypatch: pytest.MonkeyPatch) -> RecordingBackend:
    """Pinned connections go to this double instead of real sockets."""
    recorder = RecordingBackend()
    monkeypatch.setattr(transport, "network_backend", lambda: recorder)
    return recorder


@dataclass
class ScriptedResolver:
    """Answers lookups in turn; the last answer repeats. Records the hosts asked for."""

    answers: list[list[str]]
    asked: list[str] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers[min(len(self.asked), len(self.answers)) - 1]


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedResolver]:
    scripted = ScriptedResolver([["93.184.216.34"]])
    monkeypatch.setattr(guard, "_resolve", scripted)
    yield scripted


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any real name lookup fails the test (and so never leaves the machine)."""

    def refuse(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"unexpected DNS lookup of {host!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
