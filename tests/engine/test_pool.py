"""The worker pool: conversions, crashes, timeouts and errors crossing the process boundary."""

from __future__ import annotations

import asyncio
import os
import pickle
import resource
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import defusedxml.ElementTree as SafeET
import pytest

from img2svg.engine import errors
from img2svg.engine.errors import (
    BadDimensions,
    ConversionCrashed,
    ConversionFailed,
    ConversionTimeout,
    EngineError,
    NotAnImage,
    OutputTooLarge,
    TruncatedImage,
)
from img2svg.engine.pool import VectorizerPool
from img2svg.engine.trace import EngineLimits, vectorize
from tests.engine.test_decode import png_with_ihdr

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "images"
LOGO = (SAMPLES / "logo.png").read_bytes()
MEMORY = 3 * 1024**3


@pytest.fixture(scope="module")
def pool() -> Iterator[VectorizerPool]:
    with VectorizerPool(2, EngineLimits(memory_bytes=MEMORY)) as shared:
        yield shared


@pytest.fixture
def single() -> Iterator[VectorizerPool]:
    """One worker, so that "the next conversion" must run on a replacement process."""
    with VectorizerPool(1, EngineLimits(timeout_s=1.0)) as one:
        yield one


def assert_svg(svg: str) -> None:
    root = SafeET.fromstring(svg.encode())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("width") == "480"


def test_conversion_matches_in_process(pool: VectorizerPool) -> None:
    svg = pool.convert_sync(LOGO, "fast")
    assert_svg(svg)
    assert svg == vectorize(LOGO, "fast")


def test_async_conversions(pool: VectorizerPool) -> None:
    async def both() -> list[str]:
        return await asyncio.gather(pool.convert(LOGO, "fast"), pool.convert(LOGO, "slow"))

    fast, slow = asyncio.run(both())
    assert_svg(fast)
    assert_svg(slow)
    assert fast != slow


def test_workers_run_under_the_memory_limit(pool: VectorizerPool) -> None:
    soft, _ = pool._run(resource.getrlimit, resource.RLIMIT_AS)
    assert soft == MEMORY
    assert pool._run(os.getpid) != os.getpid()


def test_memory_error_in_worker_is_conversion_failed(pool: VectorizerPool) -> None:
    with pytest.raises(ConversionFailed, match="out of memory") as caught:
        pool._run(bytearray, MEMORY * 2)
    assert type(caught.value) is ConversionFailed


def test_unknown_mode_fails_in_the_caller(pool: VectorizerPool) -> None:
    with pytest.raises(ValueError, match="turbo"):
        pool.convert_sync(LOGO, "turbo")


ENGINE_ERRORS = [
    c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, EngineError)
]


def test_all_engine_errors_are_covered() -> None:
    assert len(ENGINE_ERRORS) == 9


@pytest.mark.parametrize("cls", ENGINE_ERRORS, ids=lambda c: c.__name__)
def test_engine_errors_pickle(cls: type[EngineError]) -> None:
    copy = pickle.loads(pickle.dumps(cls("some reason")))
    assert type(copy) is cls
    assert copy.reason == "some reason"
    assert copy.args == ("some reason",)


@pytest.mark.parametrize(
    ("data", "cls"),
    [
        (b"not an image at all", NotAnImage),
        (LOGO[: len(LOGO) // 2], TruncatedImage),
        (png_with_ihdr(60000, 60000), BadDimensions),
    ],
    ids=["not-an-image", "truncated", "bomb"],
)
def test_engine_errors_cross_the_process_boundary(
    pool: VectorizerPool, data: bytes, cls: type[EngineError]
) -> None:
    with pytest.raises(cls) as local:
        vectorize(data, "fast", pool.limits)
    with pytest.raises(cls) as remote:
        pool.convert_sync(data, "fast")
    assert type(remote.value) is cls
    assert remote.value.reason == local.value.reason


def test_output_bound_crosses_the_process_boundary() -> None:
    limits = EngineLimits(max_svg_bytes=100)
    with VectorizerPool(1, limits) as small, pytest.raises(OutputTooLarge) as remote:
        small.convert_sync(LOGO, "fast")
    assert type(remote.value) is OutputTooLarge
    assert "100 allowed" in remote.value.reason


def test_crashed_worker_is_reported_and_replaced(single: VectorizerPool) -> None:
    assert_svg(single.convert_sync(LOGO, "fast"))
    with pytest.raises(ConversionCrashed, match="SIGABRT"):
        single._run(os.abort)
    assert_svg(single.convert_sync(LOGO, "fast"))


def test_idle_worker_killed_from_outside_does_not_break_the_pool(
    single: VectorizerPool,
) -> None:
    # pebble marks its whole pool broken when a worker dies with no task running.
    os.kill(single._run(os.getpid), signal.SIGKILL)
    time.sleep(0.5)
    assert_svg(single.convert_sync(LOGO, "fast"))


def test_timeout_kills_the_job_and_the_pool_goes_on(single: VectorizerPool) -> None:
    started = time.perf_counter()
    with pytest.raises(ConversionTimeout, match=r"conversion exceeded 1 s"):
        single._run(time.sleep, 30)
    assert time.perf_counter() - started < 10
    assert_svg(single.convert_sync(LOGO, "fast"))


def test_cancelling_the_await_kills_the_job() -> None:
    async def cancel_then_convert(p: VectorizerPool) -> float:
        job = asyncio.ensure_future(p._run_async(time.sleep, 30))
        await asyncio.sleep(0.3)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        started = time.perf_counter()
        assert_svg(await p.convert(LOGO, "fast"))
        return time.perf_counter() - started

    with VectorizerPool(1, EngineLimits(timeout_s=60)) as p:
        # Had the sleeping job kept its only worker, this would wait ~30 s.
        assert asyncio.run(cancel_then_convert(p)) < 10


def test_close_fails_conversions_in_flight() -> None:
    # A stopped pebble pool leaves its futures unresolved; an awaiting request would hang.
    outcome: list[BaseException] = []

    def wait_for_sleeper(p: VectorizerPool) -> None:
        try:
            p._run(time.sleep, 30)
        except BaseException as exc:
            outcome.append(exc)

    p = VectorizerPool(1, EngineLimits(timeout_s=60))
    waiter = threading.Thread(target=wait_for_sleeper, args=(p,))
    waiter.start()
    time.sleep(0.5)
    p.close()
    waiter.join(10)
    assert not waiter.is_alive()
    assert [type(e) for e in outcome] == [ConversionFailed]
    assert "shut down" in outcome[0].reason


def test_closed_pool_refuses_work() -> None:
    p = VectorizerPool(1)
    p.close()
    p.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        p.convert_sync(LOGO, "fast")
