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
