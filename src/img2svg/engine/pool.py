"""Run conversions in worker processes, so that one bad image cannot take the service down.

vtracer holds the GIL (threads give no speed-up) and some inputs abort the process, exhaust
memory or run for minutes. Each conversion therefore runs in a supervised worker with a time limit
(the worker is killed when it is exceeded) and an address-space limit (RLIMIT_AS). A dead
worker is replaced and reported as `ConversionCrashed`; the pool keeps serving.

Workers are started with "spawn": the parent is an asyncio server with threads, and forking a
threaded process can deadlock the child on a lock some other thread held. "forkserver" would
restart workers faster but its preload list is process-global state shared with every other
user of multiprocessing. A spawned worker costs ~0.5 s of CPU to import numpy, Pillow and
vtracer, and ~0.5 s more for scipy.ndimage and scikit-image's contour finder (flat art,
`engine.flat`); that is paid at start-up (the pool starts its workers eagerly), after a crash
or timeout, and every `max_tasks` conversions.

The supervision (limits, timeouts, recycling, a broken pool replaced) is `img2svg.workers`,
shared with the scorer.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from pebble import ProcessExpired

from img2svg.engine.errors import (
    ConversionCrashed,
    ConversionFailed,
    ConversionTimeout,
    EngineError,
)
from img2svg.engine.presets import get_preset
from img2svg.engine.trace import EngineLimits, vectorize
from img2svg.workers import SupervisedPool, death, limit_worker

T = TypeVar("T")

log = logging.getLogger("img2svg.engine.pool")

# Recycle a worker after this many conversions: allocator fragmentation after large images
# otherwise keeps resident memory high for the life of the process.
DEFAULT_MAX_TASKS = 200
DEFAULT_LIMITS = EngineLimits()


class VectorizerPool:
    """A fixed set of vectorizer processes behind an asyncio-friendly `convert`."""

    def __init__(
        self,
        workers: int | None = None,
        limits: EngineLimits = DEFAULT_LIMITS,
        *,
        max_tasks: int = DEFAULT_MAX_TASKS,
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.limits = limits
        self._pool = SupervisedPool(
            "vectorizer",
            workers=self.workers,
            timeout_s=limits.timeout_s,
            max_tasks=max_tasks,
            initializer=_init_worker,
            initargs=(limits.memory_bytes,),
            context=multiprocessing.get_context("spawn"),
            crashed=lambda: ConversionCrashed("vectorizer processes died; the pool was restarted"),
        )
        self._pool.start()  # now, not on the first request

    async def convert(self, data: bytes, mode: str) -> str:
        """Vectorize in a worker; cancelling the awaiting task kills that worker's job."""
        get_preset(mode)  # an unknown mode is the caller's bug: fail here, not in a worker
        return await self._run_async(_convert, data, mode, self.limits)

    def convert_sync(self, data: bytes, mode: str) -> str:
        """Blocking `convert`, for scripts and threads without an event loop."""
        get_preset(mode)
        return self._run(_convert, data, mode, self.limits)

    def close(self) -> None:
        """Stop the workers now; queued and running conversions fail with ConversionFailed."""
        self._pool.close(ConversionFailed("the vectorizer pool was shut down"))

    def __enter__(self) -> VectorizerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run any picklable callable in a worker under the pool's limits (tests use this)."""
        future = self._pool.schedule(fn, args)
        try:
            return future.result()
        except BaseException as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise  # keeps pebble's RemoteTraceback as the cause
            raise translated from None

    async def _run_async(self, fn: Callable[..., T], *args: Any) -> T:
        future = self._pool.schedule(fn, args)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from None

    def _translate(self, exc: BaseException) -> BaseException:
        """Worker-side failures as engine errors; anything else (a bug) unchanged."""
        if isinstance(exc, EngineError):
            return exc
        if isinstance(exc, TimeoutError):
            return ConversionTimeout(f"conversion exceeded {self.limits.timeout_s:g} s")
        if isinstance(exc, ProcessExpired):
            return ConversionCrashed(f"vectorizer process died ({death(exc.exitcode)})")
        if isinstance(exc, BrokenProcessPool):
            if self._pool.closed:
                return ConversionFailed("the vectorizer pool was shut down")
            self._pool.replace_if_broken(exc)
            return ConversionCrashed("vectorizer processes died; the pool was restarted")
        if isinstance(exc, MemoryError):
            return ConversionFailed("out of memory while converting")
        return exc


def _convert(data: bytes, mode: str, limits: EngineLimits) -> str:
    """The worker's entry point: make sure whatever is raised can travel back.

    An exception the parent cannot unpickle makes pebble declare the whole pool broken, so
    anything unexpected is checked and, if need be, replaced by a RuntimeError with its text.
    """
    try:
        return vectorize(data, mode, limits)
    except (EngineError, ValueError, MemoryError):
        raise
    except Exception as exc:
        raise _picklable(exc) from None


def _picklable(exc: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _init_worker(memory_bytes: int | None) -> None:
    """Cap the worker, then load the decoders and the tracer before the first task."""
    limit_worker(memory_bytes)
    from PIL import Image

    Image.init()
    try:
        _warm_up()
    except Exception:  # a failed warm-up must not turn into a worker that never starts
        log.exception("vectorizer warm-up failed")


def _warm_up() -> None:
    """Two tiny conversions page in the code of both paths, flat art's (scipy, scikit-image:
    about a second to import) and vtracer's, so the first real request is not slower."""
    import io

    from PIL import Image, ImageDraw

    for noisy in (False, True):
        image = Image.new("RGB", (16, 16), (200, 30, 30))
        ImageDraw.Draw(image).ellipse((3, 3, 12, 12), fill=(30, 30, 200))
        if noisy:  # not flat art: traced by vtracer
            image = Image.effect_noise((16, 16), 60).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        vectorize(buffer.getvalue(), "fast")
