"""One limiter shared by every batch of a run, across threads and event loops.

Prefect runs each mapped task in its own thread with its own event loop, so asyncio primitives
cannot be shared between batches. This throttle keeps its state under a thread lock and wakes
waiters on their own loops, so that a run as a whole never exceeds the API's submission rate,
the number of requests in flight or the number of *tasks* in flight (the account's concurrency
window), and a 429 seen by one batch pauses all of them.

The task window is what keeps an API that allows N tasks at once busy: a submission takes a
slot, and the poller gives it back the moment it sees the task finish, so the next submission
leaves at once instead of running into 429s. Its size is `max_in_flight` when the user knows the
account's tier; otherwise it is learned: a 429 while tasks are in flight means the account's
limit is what is in flight now, and every `limit` tasks that finish without one widen it by one.
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
        max_in_flight: int | None = None,
        learn_window: bool = True,
    ) -> None:
        """`gate`, when given, is awaited before every submission on top of the run's own pacing:
        a quota shared with other processes (the flow passes Prefect's global rate limit).
        `max_in_flight` caps the tasks in flight; `learn_window` narrows it from 429s."""
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
        self._abandoned = False
        self._gate = gate
        self.window = TaskWindow(max_in_flight, learn=learn_window)

    def halt(self, reason: str) -> None:
        """Stop every further submission of the run (a refused token will not work any better)."""
        with self._lock:
            self._halt_reason = self._halt_reason or reason

    @property
    def halted(self) -> str | None:
        """Why submissions were halted, or None while they may go on."""
        return self._halt_reason

    def abandon(self, reason: str) -> None:
        """The run is stopping (it failed, or cannot record anything): no more submissions,
        and pollers leave their tasks open (the ledger still has them) instead of waiting."""
        self.halt(reason)
        self._abandoned = True

    @property
    def abandoned(self) -> bool:
        return self._abandoned

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

    def rate_limited(self, seconds: float, *, submission: bool) -> None:
        """A 429. Refusing a submission while tasks of the run are in flight, it is the
        account's concurrency limit: the window learns it, and only the refused submission
        waits. Otherwise it is the rate limit, and every submission of the run pauses."""
        if submission and self.window.refused():
            return
        self.pause(seconds)

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


class TaskWindow:
    """Tasks in flight on the API (submitted, not yet seen finished), shared across threads.

    A submission holds a slot from before its POST; the slot is *confirmed* once the API
    answers with a task, and given back when the poller sees the task end (or the submission
    fails). A 429 to a submission while confirmed tasks are in flight means the account allows
    that many: the limit narrows to it, and the refused submission gives its slot back to wait
    for room. Every `2 × limit` tasks that end without such a 429, the limit widens by one (up
    to `max_in_flight`), in case the 429 was a passing one.
    """

    def __init__(self, limit: int | None = None, *, learn: bool = True) -> None:
        if limit is not None and limit < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.cap = limit  # never wider than this
        self.limit = limit  # None: not known (yet)
        self.learn = learn
        self._holders: set[str] = set()
        self._confirmed: set[str] = set()
        self._ended_since_refusal = 0
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._holders)

    async def acquire(self, holder: str) -> None:
        """Wait for room, then count `holder` (a job key) as in flight."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if holder in self._holders:
                    return
                if self.limit is None or len(self._holders) < self.limit:
                    self._holders.add(holder)
                    return
                future: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, future))
            await future

    def confirm(self, holder: str) -> None:
        """The API created the holder's task: it counts toward the account's limit. More tasks
        accepted at once than the limit learned (answers still on their way when a 429 came)
        prove the account allows them."""
        with self._lock:
            if holder in self._holders:
                self._confirmed.add(holder)
                if self.limit is not None and len(self._confirmed) > self.limit:
                    self.limit = len(self._confirmed)

    def release(self, holder: str, *, finished: bool = True) -> None:
        """`holder` is no longer in flight (idempotent); `finished`: its task ended."""
        with self._lock:
            if holder not in self._holders:
                return
            self._holders.discard(holder)
            self._confirmed.discard(holder)
            if finished and self.learn and self.limit is not None:
                self._ended_since_refusal += 1
                if self._ended_since_refusal >= 2 * self.limit and (
                    self.cap is None or self.limit < self.cap
                ):
                    self.limit += 1
                    self._ended_since_refusal = 0
            self._wake_all()

    def refused(self) -> bool:
        """A 429 to a submission: True when it is the concurrency limit (tasks are in flight),
        which the window now holds to."""
        with self._lock:
            confirmed = len(self._confirmed)
            if not confirmed:
                return False  # nothing in flight: a rate limit, not a concurrency one
            if self.learn and (self.limit is None or confirmed < self.limit):
                self.limit = confirmed
            self._ended_since_refusal = 0
            return True

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, deque()
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
