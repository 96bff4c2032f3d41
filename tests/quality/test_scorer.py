"""The Scorer: worker processes, crash containment, timeouts, bounds, recycling, event loop.

`_scripted` runs in the workers (module level, so that "spawn" can import it): the SVG bytes
say what to do, so one pool can crash, hang and score in the same test.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import resource
import signal
import time
from typing import Any

import pytest

from img2svg.quality import (
    Quality,
    ScoreCrashed,
    ScoreError,
    ScoreFailed,
    Scorer,
    ScoreRefused,
    ScoreTimeout,
    score,
)
from tests.quality.images import flat_png, flat_svg, photo_jpeg

SOURCE = flat_png(32, 32, (10, 200, 30))
SVG = flat_svg(32, 32, (10, 200, 30))


def _scripted(source: bytes, svg: bytes, **bounds: Any) -> Any:
    """Crash, hang, fail or report on demand; anything else is a real score."""
    if svg == b"sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if svg == b"abort":
        os.abort()
    if svg == b"sigsegv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if svg == b"sleep":
        time.sleep(60)
    if svg == b"nap":
        time.sleep(0.3)
        return os.getpid()
    if svg == b"bug":
        raise KeyError("a bug in the score function")
    if svg == b"memory":
        raise MemoryError
    if svg == b"whoami":
        return (
            os.getpid(),
            resource.getrlimit(resource.RLIMIT_AS)[0],
            resource.getrlimit(resource.RLIMIT_CORE)[0],
            multiprocessing.current_process().name,
            multiprocessing.get_start_method(allow_none=True),
        )
    return score(source, svg, **bounds)


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_scores_in_a_worker_as_in_process() -> None:
    source = photo_jpeg()

    async def main() -> Quality:
        async with Scorer(workers=2) as scorer:
            return await scorer.score(source, flat_svg(160, 120, (90, 90, 90)))

    assert run(main()) == score(source, flat_svg(160, 120, (90, 90, 90)))


@pytest.mark.parametrize(("how", "signal_name"), [(b"sigkill", "SIGKILL"), (b"abort", "SIGABRT")])
def test_a_dying_worker_fails_only_its_row(how: bytes, signal_name: str) -> None:
    async def main() -> list[Quality | BaseException]:
        async with Scorer(workers=2, score_fn=_scripted) as scorer:
            rows = [SVG, how, SVG, b"sigsegv", SVG, SVG]
            first = await asyncio.gather(
                *(scorer.score(SOURCE, svg) for svg in rows), return_exceptions=True
            )
            after = await scorer.score(SOURCE, SVG)  # the pool is still serving
            return [*first, after]

    results = run(main())
    crashed = [results[1], results[3]]
    assert all(isinstance(error, ScoreCrashed) for error in crashed), results
    assert signal_name in str(results[1])
    assert "SIGSEGV" in str(results[3])
    for quality in (results[0], results[2], results[4], results[5], results[6]):
        assert isinstance(quality, Quality)
        assert quality.ssim == pytest.approx(1.0)


def test_a_score_over_its_time_limit_is_killed() -> None:
    async def main() -> tuple[BaseException, float, Quality]:
        async with Scorer(workers=1, timeout_s=1.0, score_fn=_scripted) as scorer:
            started = time.monotonic()
            with pytest.raises(ScoreTimeout, match="1 s") as caught:
                await scorer.score(SOURCE, b"sleep")
            elapsed = time.monotonic() - started
            return caught.value, elapsed, await scorer.score(SOURCE, SVG)

    error, elapsed, after = run(main())
    assert isinstance(error, ScoreError)
    assert elapsed < 20
    assert after.ssim == pytest.approx(1.0)


def test_errors_in_the_worker_are_score_errors() -> None:
    async def main() -> list[BaseException | Any]:
        async with Scorer(workers=1, score_fn=_scripted, max_svg_bytes=200) as scorer:
            rows = [b"bug", b"memory", b"<svg" + b" " * 300 + b"/>", b"not xml"]
            return await asyncio.gather(
                *(scorer.score(SOURCE, svg) for svg in rows), return_exceptions=True
            )

    bug, memory, too_big, broken = run(main())
    assert isinstance(bug, ScoreFailed) and "KeyError" in str(bug)
    assert isinstance(memory, ScoreFailed) and "out of memory" in str(memory)
    assert isinstance(too_big, ScoreRefused) and "200" in str(too_big)
    assert isinstance(broken, ScoreRefused) and "well-formed" in str(broken)


def test_workers_are_forked_from_a_fork_server_capped_and_write_no_core_files() -> None:
    cap = 3 * 1024**3

    async def main() -> Any:
        async with Scorer(workers=1, memory_bytes=cap, score_fn=_scripted) as scorer:
            return await scorer.score(SOURCE, b"whoami")

    pid, address_space, core, _name, start_method = run(main())
    assert pid != os.getpid()
    assert address_space == cap
    assert core == 0
    assert start_method == "forkserver"


def test_workers_are_recycled_after_max_tasks() -> None:
    async def main() -> list[Any]:
        async with Scorer(workers=1, max_tasks_per_child=2, score_fn=_scripted) as scorer:
            return [(await scorer.score(SOURCE, b"whoami"))[0] for _ in range(6)]

    pids = run(main())
    assert len(set(pids)) == 3
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]


def test_no_more_than_workers_in_flight_and_the_loop_stays_free() -> None:
    """Ten naps on two workers: pebble never holds more than two, and the loop keeps ticking."""

    async def main() -> tuple[int, int, set[int]]:
        async with Scorer(workers=2, score_fn=_scripted) as scorer:
            most = 0
            ticks = 0

            async def watch() -> None:
                nonlocal most, ticks
                while True:
                    most = max(most, scorer._pool.in_flight)
                    ticks += 1
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch())
            pids = await asyncio.gather(*(scorer.score(SOURCE, b"nap") for _ in range(10)))
            watcher.cancel()
            return most, ticks, set(pids)

    most, ticks, pids = run(main())
    assert most == 2
    assert ticks > 50  # 10 naps of 0.3 s on 2 workers: ~1.5 s of 10 ms ticks
    assert 1 <= len(pids) <= 2  # a worker still warming up may never get one


def test_cancelling_a_score_frees_its_worker() -> None:
    async def main() -> Quality:
        async with Scorer(workers=1, score_fn=_scripted) as scorer:
            hung = asyncio.create_task(scorer.score(SOURCE, b"sleep"))
            await asyncio.sleep(1.0)
            hung.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hung
            return await asyncio.wait_for(scorer.score(SOURCE, SVG), timeout=30)

    assert run(main()).ssim == pytest.approx(1.0)


def test_closing_fails_running_and_waiting_rows_then_refuses_new_work() -> None:
    async def main() -> list[BaseException | Any]:
        scorer = Scorer(workers=1, score_fn=_scripted)
        await scorer.start()
        running = asyncio.create_task(scorer.score(SOURCE, b"sleep"))
        waiting = asyncio.create_task(scorer.score(SOURCE, SVG))
        await asyncio.sleep(1.0)
        await scorer.aclose()
        results = await asyncio.gather(running, waiting, return_exceptions=True)
        with pytest.raises(RuntimeError, match="closed"):
            await scorer.score(SOURCE, SVG)
        return results

    running, waiting = run(main())
    assert isinstance(running, ScoreFailed) and "closed while scoring" in str(running)
    assert isinstance(waiting, ScoreFailed) and "closed before" in str(waiting)
