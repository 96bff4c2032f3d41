"""A supervised process pool: native code that may crash, hang or eat memory, kept at arm's length.

Both CPU-bound stages that run untrusted input through native code, the vectorizer
(`img2svg.engine.pool`) and the scorer (`img2svg.quality.scorer`), run it in pebble worker
processes under the same regime, written here once:

- a fixed number of workers, each with an address-space cap (RLIMIT_AS, so a huge input ends in
  MemoryError instead of the OOM killer) and no core files, warmed up before their first task;
- a per-task time limit (pebble kills the worker) and a worker recycled every `max_tasks`;
- a worker that dies fails only its own task (`ProcessExpired`), and pebble replaces it;
- a pool pebble declares broken (a worker died while idle) is replaced by a new one, and the
  futures the old one will never resolve are failed, so no caller waits forever.

What a failure means to its caller (a row's `ScoreError`, a request's `EngineError`) is the
caller's to say; `death` describes a dead worker for both.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import resource
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any, TypeVar

from pebble import ProcessPool

T = TypeVar("T")

log = logging.getLogger(__name__)


class SupervisedPool:
    """`schedule(fn, args)` into pebble workers that are replaced whatever happens to them.

    Parameters:
        name: what the workers are, for log lines ("vectorizer", "scoring").
        workers: processes.
        timeout_s: one task's time limit; its worker is killed when it is exceeded.
        max_tasks: tasks before a worker is replaced by a fresh process.
        initializer, initargs: run in each worker before its first task (after `limit_worker`).
        context: the multiprocessing context workers start from (spawn, forkserver).
        crashed: the error a task fails with when its pool broke and was replaced.
    """

    def __init__(
        self,
        name: str,
        *,
        workers: int,
        timeout_s: float | None,
        max_tasks: int,
        initializer: Callable[..., None],
        initargs: tuple[Any, ...],
        context: multiprocessing.context.BaseContext,
        crashed: Callable[[], BaseException],
    ) -> None:
        self.name = name
        self._crashed = crashed  # what a task of a pool replaced under it fails with
        self.workers = workers
        self.timeout_s = timeout_s
        self._options = {
            "max_workers": workers,
            "max_tasks": max_tasks,
            "initializer": initializer,
            "initargs": initargs,
            "context": context,
        }
        self._lock = threading.RLock()  # re-entered: replacing a pool fails its futures
        self._pool: ProcessPool | None = None
        self.closed = False
        # Futures pebble has not resolved, with their pool: a stopped pool never resolves them.
        self._pending: dict[Future[Any], ProcessPool] = {}

    @property
    def in_flight(self) -> int:
        """Tasks handed to pebble and not yet resolved."""
        with self._lock:
            return len(self._pending)

    def start(self) -> None:
        """Start the workers now rather than on the first task (starting takes a while)."""
        with self._lock:
            self._current()

    def schedule(self, fn: Callable[..., T], args: tuple[Any, ...]) -> Future[T]:
        """Run `fn(*args)` in a worker; RuntimeError once the pool is closed."""
        with self._lock:
            pool = self._current()
            try:
                future = pool.schedule(fn, args=args, timeout=self.timeout_s)
            except RuntimeError:  # the pool broke between the check and the call
                pool = self._replace()
                future = pool.schedule(fn, args=args, timeout=self.timeout_s)
            self._pending[future] = pool
        future.add_done_callback(self._forget)
        return future

    def replace_if_broken(self, reason: BaseException) -> None:
        """After a BrokenProcessPool: every task of the broken pool lands here, so the pool is
        replaced once."""
        with self._lock:
            if not self.closed and self._pool is not None and not self._pool.active:
                log.warning("%s pool broke (%s); starting a new one", self.name, reason)
                self._replace()

    def close(self, error: BaseException) -> None:
        """Stop the workers and wait for them (blocking: from an event loop, in a thread);
        then the futures pebble left unresolved fail with `error`."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join()  # pebble resolves what it can first: a future is resolved once
            self._abandon(pool, error)

    def _current(self) -> ProcessPool:
        if self.closed:
            raise RuntimeError(f"the {self.name} pool is closed")
        if self._pool is None:
            self._pool = self._new()
        elif not self._pool.active:
            self._replace()
        assert self._pool is not None
        return self._pool

    def _new(self) -> ProcessPool:
        pool = ProcessPool(**self._options)
        _ = pool.active  # starts the workers now
        return pool

    def _replace(self) -> ProcessPool:
        """A new pool now; the old one is stopped and joined in the background, then the
        futures it left unresolved fail (after the join: a future is resolved once)."""
        old, self._pool = self._pool, self._new()
        if old is not None:
            old.stop()

            def reap(old: ProcessPool = old) -> None:
                old.join()
                self._abandon(old, self._crashed())

            threading.Thread(target=reap, name=f"img2svg-{self.name}-reaper", daemon=True).start()
        return self._pool

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._pending.pop(future, None)

    def _abandon(self, pool: ProcessPool, error: BaseException) -> None:
        with self._lock:
            abandoned = [f for f, owner in self._pending.items() if owner is pool]
        for future in abandoned:
            if not future.done():
                with contextlib.suppress(InvalidStateError):  # resolved meanwhile
                    future.set_exception(error)


def limit_worker(memory_bytes: int | None) -> None:
    """In a worker, before anything else: no core files (a worker that aborts on a hostile
    input would write up to `memory_bytes` of core per crash), and the address-space cap."""
    lower_soft_limit(resource.RLIMIT_CORE, 0)
    if memory_bytes is not None:
        lower_soft_limit(resource.RLIMIT_AS, memory_bytes)


def lower_soft_limit(kind: int, value: int) -> None:
    """Lower the soft limit only: the hard limit may be below `value`, and stays as it is."""
    _, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, hard))


def death(exitcode: int | None) -> str:
    """How a worker died, from its exit code: 'signal SIGSEGV', 'exit code 1'."""
    if exitcode is None:
        return "unknown exit status"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"
