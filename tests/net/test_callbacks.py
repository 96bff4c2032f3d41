"""notify_url delivery goes only to public addresses, and to the one the guard checked."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from img2svg.service.callbacks import deliver
from tests.helpers import LoopbackServer
from tests.net.conftest import RecordingBackend, ScriptedResolver

PUBLIC = "93.184.216.34"


def send(url: str, *, allow_private: bool, attempts: int = 3) -> bool:
    async def go() -> bool:
        async with httpx.AsyncClient() as client:
            return await deliver(
                client,
                url,
                {"main_task_id": "t1", "sub_task_results": []},
                attempts=attempts,
                timeout_s=2,
                interval_s=0,
                allow_private=allow_private,
            )

    return asyncio.run(go())


def test_callback_to_a_private_address_is_not_called(
    web: LoopbackServer, resolver: ScriptedResolver, backend: RecordingBackend
) -> None:
    port = web.httpd.server_address[1]
    resolver.answers = [["127.0.0.1"]]
    assert not send(f"http://hook.test:{port}/hook", allow_private=False)
    assert not send(f"{web.url}/hook", allow_private=False)
    assert not send(f"http://2130706433:{port}/hook", allow_private=False)
    assert web.posts == [] and backend.dialled == []
    assert resolver.asked == ["hook.test"]

    assert send(f"{web.url}/hook", allow_private=True)  # allowed: delivered as before
    assert [path for path, _ in web.posts] == ["/hook"]


def test_callback_attempts_all_go_to_the_checked_address(
    resolver: ScriptedResolver, backend: RecordingBackend, no_dns: None
) -> None:
    resolver.answers = [[PUBLIC], ["127.0.0.1"]]
    failing = b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    backend.answers[PUBLIC] = failing
    assert not send("http://hook.test/cb", allow_private=False, attempts=3)
    assert resolver.asked == ["hook.test"]
    assert backend.dialled == [(PUBLIC, 80)] * 3
    posts: list[Any] = [w for w in backend.written if w.startswith(b"POST /cb HTTP/1.1")]
    assert len(posts) == 3 and all(b"\r\nHost: hook.test\r\n" in p for p in posts)
