"""Score rows in worker processes, off the event loop, so that no SVG can sink a run.

Scoring is CPU-bound native code (resvg, scikit-image) that holds the GIL, takes ~135 bytes per
source pixel and can crash on a hostile input. It runs under the supervision the engine's
vectorizer pool uses too (`img2svg.workers`):

* a fixed number of worker processes, forked from a "forkserver" (forking the pipeline's own
  process, which runs threads, can deadlock the child on a lock another thread held; the fork
  server is a fresh single-threaded process). It imports the scoring code once, so a worker
  starts, or is recycled, in milliseconds: under "spawn" each worker re-imported it, and the
  parent's `__main__` too (Prefect's engine, in a deployment's flow run), about a second of CPU
  each;
* at most `workers` scores in flight: callers beyond that wait on a semaphore holding their own
  bytes, instead of piling payloads up in pebble's queue;
* a per-score timeout (pebble kills the worker), an address-space cap (RLIMIT_AS, so a huge
  image ends in MemoryError instead of the OOM killer) and no core dumps;
* a worker recycled after `max_tasks_per_child` scores, to return fragmented memory;
* a worker that dies (segfault, abort, SIGKILL) fails only its own row, with `ScoreCrashed`;
  pebble replaces it, and a pool pebble declares broken is replaced by a new one.

Every failure reaches the caller as a `ScoreError` with a reason; nothing else is raised for a
row (an unexpected exception in a worker is `ScoreFailed` with its type and text).
"""

from __future__ import annotations

import asyncio
import io
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool

from pebble import ProcessExpired

from img2svg.quality.errors import ScoreCrashed, ScoreError, ScoreFailed, ScoreTimeout
from img2svg.quality.score import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SVG_BYTES, Quality, score
from img2svg.workers import SupervisedPool, death, limit_worker

log = logging.getLogger("img2svg.quality.scorer")

ScoreFunction = Callable[..., Quality]

# A catalog photo scores in well under 1 s; a 40 Mpx source (the pixel bound) took 97 s on a
# 2-CPU machine, so the limit leaves room for the largest accepted input on a slower one.
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MAX_TASKS = 2000  # bounds allocator fragmentation; a recycle costs a fork and lazy imports
# ~135 B per source pixel: a 40 Mpx source (the pixel bound) scores under this cap (measured),
# and under a 3 GiB cap fails with "out of memory"; a larger cap would allow nothing more.
DEFAULT_MEMORY_BYTES = 8 * 1024**3
_CLOSED_WHILE_SCORING = "the scorer was closed while scoring this row"


class Scorer:
    """`score` in worker processes: `async with Scorer(2) as s: q = await s.score(src, svg)`.

    Parameters:
        workers: processes, and scores in flight (default: the machine's CPU count).
        timeout_s: one score's time limit; its worker is killed when it is exceeded.
        max_tasks_per_child: scores before a worker is replaced by a fresh process.
        memory_bytes: each worker's address-space cap, or None for none.
        max_pixels, max_svg_bytes: passed to `score` (sources and SVGs above are refused).
        score_fn: what runs in the worker, called like `score`; a picklable module-level
            function. A seam for tests (a function that kills its own process).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tasks_per_child: int = DEFAULT_MAX_TASKS,
        memory_bytes: int | None = DEFAULT_MEMORY_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_svg_bytes: int = DEFAULT_MAX_SVG_BYTES,
        score_fn: ScoreFunction = score,
    ) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.timeout_s = timeout_s
        self.max_tasks_per_child = max_tasks_per_child
        self.memory_bytes = memory_bytes
        self._bounds = {"max_pixels": max_pixels, "max_svg_bytes": max_svg_bytes}
        self._score_fn = score_fn
        self._slots = asyncio.Semaphore(self.workers)
        self._pool = SupervisedPool(
            "scoring",
            workers=self.workers,
            timeout_s=timeout_s,
            max_tasks=max_tasks_per_child,
            initializer=_init_worker,
            initargs=(memory_bytes,),
            context=_forkserver(),
            crashed=lambda: ScoreCrashed("scoring processes died; the pool was restarted"),
        )

    async def __aenter__(self) -> Scorer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Start the workers now rather than on the first score (starting takes a while)."""
        await asyncio.to_thread(self._pool.start)

    async def score(self, source: bytes, svg: bytes) -> Quality:
        """Score one row in a worker. Raises only `ScoreError` for anything about the row.

        Raises RuntimeError if the scorer is already closed (a caller bug); a score still
        waiting for a worker when it is closed fails with `ScoreFailed`.
        """
        if self._pool.closed:
            raise RuntimeError("the scorer is closed")
        async with self._slots:
            if self._pool.closed:
                raise ScoreFailed("the scorer was closed before this row was scored")
            args = (self._score_fn, source, svg, self._bounds)
            future = self._pool.schedule(_score_in_worker, args)
            try:
                return await asyncio.wrap_future(future)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # our caller cancelled: wrap_future has cancelled the pebble future
                raise ScoreFailed(_CLOSED_WHILE_SCORING) from None
            except ScoreError:
                raise
            except BaseException as exc:
                raise self._translate(exc) from exc

    async def aclose(self) -> None:
        """Stop the workers; scores running or waiting fail with `ScoreFailed`."""
        await asyncio.to_thread(self._pool.close, ScoreFailed(_CLOSED_WHILE_SCORING))

    def _translate(self, exc: BaseException) -> ScoreError:
        """What pebble raises for a worker's fate, as the row's `ScoreError`."""
        if self._pool.closed:
            return ScoreFailed(_CLOSED_WHILE_SCORING)
        if isinstance(exc, TimeoutError):
            return ScoreTimeout(f"scoring took more than {self.timeout_s:g} s")
        if isinstance(exc, ProcessExpired):
            return ScoreCrashed(f"the scoring process died ({death(exc.exitcode)})")
        if isinstance(exc, BrokenProcessPool):
            self._pool.replace_if_broken(exc)
            return ScoreCrashed("scoring processes died; the pool was restarted")
        return ScoreFailed(f"scoring failed: {type(exc).__name__}: {exc}")


def _score_in_worker(
    score_fn: ScoreFunction, source: bytes, svg: bytes, bounds: dict[str, int]
) -> Quality:
    """The worker's entry point: only `ScoreError`s leave it, so every one can be unpickled."""
    try:
        return score_fn(source, svg, **bounds)
    except ScoreError:
        raise
    except MemoryError:
        raise ScoreFailed("out of memory while scoring") from None
    except Exception as exc:
        raise ScoreFailed(f"scoring failed: {type(exc).__name__}: {exc}") from None


def _init_worker(memory_bytes: int | None) -> None:
    """No core files, the memory cap, then import and run everything once on a tiny input."""
    limit_worker(memory_bytes)
    try:
        _warm_up()
    except Exception:  # a failed warm-up must not become a worker that never starts
        log.exception("scoring warm-up failed")


def _warm_up() -> None:
    """scikit-image alone takes ~0.5 s to import: pay it before the first timed score."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, "PNG")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>'
    score(buffer.getvalue(), svg)


# What the fork server imports once, for every worker it forks (the score function's module and
# the metrics it imports lazily).
_PRELOAD = ["img2svg.quality.score", "skimage.metrics"]


def _forkserver() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)  # read when the server starts, on first use
    return context
