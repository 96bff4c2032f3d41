"""Runs queued tasks through the vectorizer pool and records every outcome.

A fixed number of asyncio workers (one per engine process) take task ids from a queue, so at most
that many conversions run at once and the event loop stays free to answer polls. Each SVG passes
through the sanitizer (`img2svg.svg`) before it is stored, so the service serves only what draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from img2svg.engine.errors import EngineError
from img2svg.engine.pool import VectorizerPool
from img2svg.service.callbacks import deliver
from img2svg.service.config import ServiceConfig
from img2svg.service.metrics import ServiceMetrics
from img2svg.service.store import DONE, FAILED, REJECTED, TaskStore
from img2svg.service.views import task_result
from img2svg.svg import sanitize_svg
from img2svg.svg.check import InvalidSvg

log = logging.getLogger("img2svg.service.runner")


class TaskRunner:
    def __init__(
        self,
        config: ServiceConfig,
        store: TaskStore,
        pool: VectorizerPool,
        metrics: ServiceMetrics,
        http: httpx.AsyncClient,
    ) -> None:
        self.config = config
        self.store = store
        self.pool = pool
        self.metrics = metrics
        self.http = http
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._callbacks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        requeued, failed = self.store.recover()
        if requeued or failed:
            log.info("restart: resumed %d unfinished tasks, failed %d", len(requeued), len(failed))
        for task_id in failed:
            self.metrics.tasks_finished.labels(status=str(FAILED)).inc()
            self._notify(task_id)
        for task_id in requeued:
            self._queue.put_nowait(task_id)
        self.metrics.tasks_open.set(len(requeued))
        # Enough runners for every task the account may have in flight: a task's latency (an
        # injected fault, a slow fetch) waits without holding a CPU; the pool bounds the CPU.
        runners = max(self.config.workers, self.config.max_concurrency or 0)
        self._workers = [
            asyncio.create_task(self._work(), name=f"img2svg-runner-{i}") for i in range(runners)
        ]

    async def stop(self) -> None:
        for worker in self._workers:
            worker.cancel()
        for pending in (*self._workers, *self._callbacks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending

    def enqueue(self, task_id: str) -> None:
        self.metrics.tasks_open.inc()
        self._queue.put_nowait(task_id)

    async def _work(self) -> None:
        while True:
            task_id = await self._queue.get()
            try:
                await self._run(task_id)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must fail one task, never the worker loop
                log.exception("task %s crashed the runner", task_id)
                self._finish(task_id, FAILED, reason="internal error while converting")

    async def _run(self, task_id: str) -> None:
        task = self.store.get(task_id)
        if task is None or task.terminal:
            return
        self.store.start(task_id)
        if self.config.faults.latency_s > 0:
            await asyncio.sleep(self.config.faults.latency_s)
        if task.outcome == "fail":
            self._finish(task_id, FAILED, reason="conversion failed (injected fault)")
            return
        if task.outcome == "reject":
            self._finish(task_id, REJECTED, reason="rejected by content moderation (injected)")
            return
        data = self.store.input_path(task_id).read_bytes()
        started = time.perf_counter()
        try:
            svg = await self.pool.convert(data, task.mode)
        except EngineError as exc:
            self._finish(task_id, FAILED, reason=exc.reason)
            return
        finally:
            self.metrics.conversion_seconds.labels(mode=task.mode).observe(
                time.perf_counter() - started
            )
        try:  # served to browsers: only what draws is stored
            encoded, changed, removed = await asyncio.to_thread(sanitize_svg, svg.encode())
        except InvalidSvg as exc:
            self._finish(task_id, FAILED, reason=f"the vectorizer's output is not an SVG: {exc}")
            return
        if changed:
            log.warning("task %s: removed from its SVG before storing: %s", task_id, removed[:10])
        await asyncio.to_thread(self.store.write_svg, task.sub_task_id, encoded)
        self._finish(task_id, DONE, svg_bytes=len(encoded))

    def _finish(
        self, task_id: str, status: int, *, reason: str | None = None, svg_bytes: int | None = None
    ) -> None:
        self.store.finish(task_id, status, reason=reason, svg_bytes=svg_bytes)
        self.metrics.tasks_finished.labels(status=str(status)).inc()
        self.metrics.tasks_open.dec()
        self._notify(task_id)

    def _notify(self, task_id: str) -> None:
        task = self.store.get(task_id)
        if task is None or not task.notify_url:
            return
        job = asyncio.create_task(self._deliver(task.notify_url, task_result(task)))
        self._callbacks.add(job)
        job.add_done_callback(self._callbacks.discard)

    async def _deliver(self, url: str, result: dict) -> None:
        payload = {
            "main_task_id": result["task_id"],
            "sub_task_results": result["sub_task_results"],
        }
        delivered = await deliver(
            self.http,
            url,
            payload,
            attempts=self.config.callback_attempts,
            timeout_s=self.config.callback_timeout_s,
            interval_s=self.config.callback_interval_s,
            allow_private=self.config.allow_private_urls,
        )
        self.metrics.callback_deliveries.labels(result="delivered" if delivered else "failed").inc()
