"""The quotas of the real service, reproduced so the pipeline can be tested against them.

HiDream allows 20 tasks a minute per account and a tier-dependent number of tasks in progress.
Both are refused here with HTTP 429 and a Retry-After that says when a retry can succeed.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    retry_after_s: int


class SlidingWindowLimiter:
    """At most `limit` acquisitions per account in any `window_s` seconds.

    A slot is taken when a submission is admitted and given back if the submission is then
    refused for another reason, so bad requests do not eat the quota.
    """

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def try_acquire(self, account: str) -> float | Refusal:
        """Return a ticket (the slot's timestamp) or a Refusal saying when to retry."""
        now = time.monotonic()
        with self._lock:
            events = self._events[account]
            while events and events[0] <= now - self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                wait = events[0] + self.window_s - now
                return Refusal(retry_after_s=max(1, math.ceil(wait)))
            events.append(now)
            return now

    def release(self, account: str, ticket: float) -> None:
        with self._lock:
            events = self._events[account]
            with contextlib.suppress(ValueError):
                events.remove(ticket)
