"""Headless Chromium driven over the DevTools protocol, for tests of pages opened from disk.

The browser gets no network: every host resolves to nothing and every proxy is refused, so a
page that tried to load anything would show it in `requests` (and fail). Each event is kept
in `events`; JavaScript dialogs (alert, confirm) are recorded in `dialogs` and dismissed, so a
script injected into a page cannot stall the test.

With `loopback=True` the address 127.0.0.1 (and only it) is reachable, for tests that serve
pages, or watch for leaks, from servers of their own on loopback; the resolver rule that maps
every host to nothing would otherwise catch IP literals too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "/usr/bin/chromium")


def find_chromium() -> str | None:
    return next(filter(None, (shutil.which(name) for name in CHROMIUM_CANDIDATES)), None)


class Chromium:
    """`async with Chromium(binary, profile_dir) as browser: await browser.open(url)`."""

    def __init__(
        self,
        binary: str,
        profile: Path,
        *,
        width: int = 1280,
        height: int = 2000,
        loopback: bool = False,
    ):
        self.binary = binary
        self.profile = profile
        self.size = (width, height)
        self.loopback = loopback
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[str] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._dismissals: set[asyncio.Task[dict[str, Any]]] = set()
        self._port = 0
        self._target_id = ""

    async def __aenter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        # A reused profile keeps the last run's port file; reading it would find a dead port.
        (self.profile / "DevToolsActivePort").unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--host-resolver-rules=MAP * ~NOTFOUND"
                + (", EXCLUDE 127.0.0.1" if self.loopback else ""),
                "--proxy-server=127.0.0.1:9",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port = await self._devtools_port()
            async with httpx.AsyncClient(trust_env=False) as client:
                targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
            page = next(target for target in targets if target["type"] == "page")
            self._port, self._target_id = port, page["id"]
            self._socket = await connect(page["webSocketDebuggerUrl"], max_size=None)
            self._reader = asyncio.create_task(self._read())
            for domain in ("Page", "Runtime", "Network", "Log"):
                await self.send(f"{domain}.enable")
            width, height = self.size
            await self.send(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        except BaseException:
            await self.__aexit__()  # a browser that failed to come up is not left running
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._reader is not None:
            self._reader.cancel()
        if self._socket is not None:
            await self._socket.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._socket is not None
        message_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = answer
        await self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(answer, timeout=60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    async def open(self, url: str, *, timeout_s: float = 60.0) -> float:
        """Navigate and wait until the page sets `body.dataset.ready`; return the seconds taken."""
        started = time.monotonic()
        await self.send("Page.navigate", url=url)
        while time.monotonic() - started < timeout_s:
            ready = await self.evaluate(
                "document.readyState === 'complete' && document.body !== null"
                " && document.body.dataset.ready === '1'"
            )
            if ready:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{url} was not ready after {timeout_s} s")

    async def navigate(self, url: str, *, timeout_s: float = 30.0) -> float:
        """Navigate and wait for the main frame's load event, for pages that set no ready flag
        (an SVG document has no body); return the seconds taken."""
        started = time.monotonic()
        seen = len(self.events)
        await self.send("Page.navigate", url=url)
        while time.monotonic() - started < timeout_s:
            if any(event["method"] == "Page.loadEventFired" for event in self.events[seen:]):
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        raise TimeoutError(f"{url} did not load after {timeout_s} s")

    async def add_binding(self, name: str) -> None:
        """Expose `window.<name>(payload)` to every frame's page script; calls are recorded."""
        await self.send("Runtime.addBinding", name=name)

    def binding_calls(self, name: str) -> list[str]:
        return [
            event["params"]["payload"]
            for event in self.events
            if event["method"] == "Runtime.bindingCalled" and event["params"]["name"] == name
        ]

    async def close_other_pages(self) -> list[str]:
        """Close every page but the driven one (windows a page opened) and bring that one back
        to the front: a popup takes the focus, and a page in the background gets its timers
        and animation frames throttled. Returns the URLs of the pages closed."""
        targets = (await self.send("Target.getTargets"))["targetInfos"]
        others = [t for t in targets if t["type"] == "page" and t["targetId"] != self._target_id]
        for target in others:
            await self.send("Target.closeTarget", targetId=target["targetId"])
        if others:
            await self.send("Page.bringToFront")
        return [target["url"] for target in others]

    def clear(self) -> None:
        """Forget the events and dialogs seen so far, to attribute the next ones to one page."""
        self.events.clear()
        self.dialogs.clear()

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path) -> bytes:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        data = base64.b64decode(shot["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def requests(self) -> list[str]:
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
        ]

    def log_entries(self) -> list[str]:
        return [
            event["params"]["entry"].get("text", "")
            for event in self.events
            if event["method"] == "Log.entryAdded"
        ]

    async def _devtools_port(self) -> int:
        """Chromium writes the port it picked to DevToolsActivePort in the profile."""
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                return int(marker.read_text().splitlines()[0])
            await asyncio.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    async def _read(self) -> None:
        assert self._socket is not None
        async for raw in self._socket:
            message = json.loads(raw)
            if "id" in message:
                waiting = self._waiting.pop(message["id"], None)
                if waiting is not None and not waiting.done():
                    waiting.set_result(message)
                continue
            self.events.append(message)
            if message.get("method") == "Page.javascriptDialogOpening":
                self.dialogs.append(message["params"].get("message", ""))
                dismiss = asyncio.create_task(
                    self.send("Page.handleJavaScriptDialog", accept=False)
                )
                self._dismissals.add(dismiss)
                dismiss.add_done_callback(self._dismissals.discard)


def chromium_or_skip() -> str:
    """The browser, or a skip when it is missing and this is not CI (in CI it must run)."""
    import pytest

    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the browser tests")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    return binary
