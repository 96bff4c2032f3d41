"""Deterministic fault injection: the chaos the pipeline must survive, reproducible by seed.

One seeded generator decides, in request order, whether an API request is answered 500 or 503,
answered slowly, or has its connection dropped after the work was done (a lost response, the
case idempotency keys exist for); a second decides at creation whether a task will end failed
(3) or rejected (4).
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from img2svg.service.config import FaultConfig

Fault = Literal["http_500", "http_503", "drop", "slow"]
Outcome = Literal["convert", "fail", "reject"]
_FAULTS: tuple[Fault, ...] = ("http_500", "http_503", "drop", "slow")


class FaultPlan:
    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._request_rng = random.Random(config.seed)
        self._task_rng = random.Random(None if config.seed is None else config.seed + 1)
        self._lock = threading.Lock()

    def next_fault(self) -> Fault | None:
        if self.config.fault_rate <= 0:
            return None
        with self._lock:
            hit = self._request_rng.random() < self.config.fault_rate
            kind = self._request_rng.choice(_FAULTS)
        return kind if hit else None

    def next_outcome(self) -> Outcome:
        with self._lock:
            r = self._task_rng.random()
        if r < self.config.fail_rate:
            return "fail"
        if r < self.config.fail_rate + self.config.reject_rate:
            return "reject"
        return "convert"


class FaultInjectionMiddleware:
    """ASGI middleware applying `FaultPlan` to the API and file routes only."""

    def __init__(self, app: ASGIApp, plan: FaultPlan, prefixes: tuple[str, ...], on_fault) -> None:
        self.app = app
        self.plan = plan
        self.prefixes = prefixes
        self.on_fault = on_fault

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        fault = self.plan.next_fault()
        if fault is None:
            await self.app(scope, receive, send)
            return
        self.on_fault(fault)
        if fault in ("http_500", "http_503"):
            status = 500 if fault == "http_500" else 503
            body = b'{"code": %d, "message": "injected fault"}' % (5000 if status == 500 else 5003)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if fault == "slow":
            await asyncio.sleep(self.plan.config.slow_response_s)
            await self.app(scope, receive, send)
            return
        await self._drop_after(scope, receive, send)

    async def _drop_after(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the app do its work, then send half the answer and cut the connection."""
        messages: list[Message] = []

        async def capture(message: Message) -> None:
            messages.append(message)

        await self.app(scope, receive, capture)
        start = next(m for m in messages if m["type"] == "http.response.start")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body) + 16).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send(
            {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
        )
        # Returning with the body incomplete makes the server close the connection: the client
        # sees a dropped connection after the work was done.
