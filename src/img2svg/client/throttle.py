"""One limiter shared by every batch of a run, across threads and event loops.

Prefect runs each mapped task in its own thread with its own event loop, so asyncio primitives
cannot be shared between batches. This throttle keeps its state under a thread lock and wakes
waiters on their own loops, so that a run as a whole never exceeds the API's submission rate or
the number of requests in flight, and a 429 seen by one batch pauses all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

SubmissionGate = Callable[[], Awaitable[None]]


class Throttle:
    def __init__(
        self,
        per_minute: float | None = None,
        concurrency: int | None = None,
        *,
        gate: SubmissionGate | None = None,
    ) -> None:
        """`gate`, when given, is awaited before every submission on top of the run's own pacing:
        a quota shared with other processes (the flow passes Prefect's global rate limit)."""
        if per_minute is not None and per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.per_minute = per_minute
        self.concurrency = concurrency
        self._interval = 60.0 / per_minute if per_minute else 0.0
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._in_flight = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._halt_reason: str | None = None
        self._gate = gate

    def halt(self, reason: str) -> None:
        """Stop every further submission of the run (a refused token will not work any better)."""
        with self._lock:
            self._halt_reason = self._halt_reason or reason

    @property
    def halted(self) -> str | None:
        """Why submissions were halted, or None while they may go on."""
        return self._halt_reason

    async def wait_for_submission_slot(self) -> None:
        """Space submissions evenly at `per_minute`, and honour any pause from a 429."""
        while True:
            with self._lock:
                now = time.monotonic()
                paused = self._paused_until > now
                if paused:
                    delay = self._paused_until - now
                else:
                    slot = max(now, self._next_slot)
                    self._next_slot = slot + self._interval
                    delay = slot - now
            if delay > 0:
                await asyncio.sleep(delay)
            if not paused and self._paused_until <= time.monotonic():
                if self._gate is not None:
                    await self._gate()
                return

    def pause(self, seconds: float) -> None:
        """Hold every submission of the run for `seconds` (a Retry-After from the server)."""
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    @asynccontextmanager
    async def request_slot(self) -> AsyncIterator[None]:
        """At most `concurrency` requests in flight across the whole run."""
        if self.concurrency is None:
            yield
            return
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._in_flight < self.concurrency:  # type: ignore[operator]
                self._in_flight += 1
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        try:
            await future
        except asyncio.CancelledError:
            with self._lock:
                if future.done() and not future.cancelled():
                    self._release_locked()  # we were handed a slot we will not use
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove((loop, future))
            raise

    def _release(self) -> None:
        with self._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        while self._waiters:
            loop, future = self._waiters.popleft()
            if loop.is_closed():
                continue
            # The slot passes straight to the waiter: _in_flight stays the same.
            loop.call_soon_threadsafe(self._wake, future)
            return
        self._in_flight -= 1

    def _wake(self, future: asyncio.Future[None]) -> None:
        if future.done():  # its waiter was cancelled meanwhile: pass the slot on
            self._release()
        else:
            future.set_result(None)
