"""The run-wide throttle: rate spacing, pauses and a cross-thread concurrency cap."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time

from img2svg.client import Throttle


def test_submissions_are_spaced_at_the_rate() -> None:
    throttle = Throttle(per_minute=600)  # one every 0.1 s

    async def go() -> list[float]:
        stamps = []
        for _ in range(5):
            await throttle.wait_for_submission_slot()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(go())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.09


def test_pause_holds_submissions() -> None:
    throttle = Throttle()
    throttle.pause(0.3)
    started = time.monotonic()
    asyncio.run(throttle.wait_for_submission_slot())
    assert time.monotonic() - started >= 0.29


def test_concurrency_is_capped_across_threads_and_loops() -> None:
    throttle = Throttle(concurrency=3)
    lock = threading.Lock()
    current = peak = 0

    async def worker() -> None:
        nonlocal current, peak
        for _ in range(5):
            async with throttle.request_slot():
                with lock:
                    current += 1
                    peak = max(peak, current)
                await asyncio.sleep(0.005)
                with lock:
                    current -= 1

    async def many() -> None:
        await asyncio.gather(*(worker() for _ in range(4)))

    threads = [threading.Thread(target=lambda: asyncio.run(many())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert peak == 3
    assert current == 0


def test_the_task_window_learns_the_accounts_limit_and_widens_again() -> None:
    window = Throttle().window  # no limit known
    assert window.limit is None

    async def fill(n: int) -> None:
        for i in range(n):
            await window.acquire(f"k{i}")

    asyncio.run(fill(4))
    for i in range(3):
        window.confirm(f"k{i}")  # three tasks exist
    assert window.refused()  # the 4th met a 429 with 3 tasks running: the account allows 3
    assert window.limit == 3 and window.in_flight == 4
    window.release("k3", finished=False)  # the refused one gives its slot back

    async def blocked() -> bool:
        try:
            await asyncio.wait_for(window.acquire("k9"), 0.2)
        except TimeoutError:
            return True
        return False

    assert asyncio.run(blocked())  # 3 in flight, limit 3: the next waits
    for i in range(3):
        window.release(f"k{i}")
    for i in range(3):  # six tasks ended without a 429 since: one more slot is tried
        asyncio.run(window.acquire(f"m{i}"))
        window.release(f"m{i}")
    assert window.limit == 4 and window.in_flight == 0


def test_a_known_cap_is_never_exceeded_and_a_rate_429_does_not_shrink_it() -> None:
    throttle = Throttle(max_in_flight=2)
    window = throttle.window
    asyncio.run(window.acquire("a"))
    throttle.rate_limited(0.2, submission=True)  # nothing confirmed in flight: the rate limit
    assert window.limit == 2
    assert asyncio.run(_paused(throttle))  # which pauses every submission
    for i in range(10):
        asyncio.run(window.acquire(f"x{i}"))
        window.release(f"x{i}")
    assert window.limit == 2  # widening stops at the cap


async def _paused(throttle: Throttle) -> bool:
    started = time.monotonic()
    await throttle.wait_for_submission_slot()
    return time.monotonic() - started >= 0.15


def test_a_waiter_on_another_thread_is_woken_by_a_release() -> None:
    window = Throttle(max_in_flight=1).window
    asyncio.run(window.acquire("first"))
    got: list[float] = []

    def waiter() -> None:
        async def go() -> None:
            await window.acquire("second")
            got.append(time.monotonic())

        asyncio.run(go())

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    assert not got
    released = time.monotonic()
    window.release("first")
    thread.join(timeout=5)
    assert got and got[0] - released < 1.0
