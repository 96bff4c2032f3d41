"""The knobs of one conversion run, shared by the flow, its tasks and the CLI."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from img2svg.client import UNKNOWN_TASK_CODES

Mode = Literal["fast", "slow"]

HIDREAM_RATE_PER_MINUTE = 20.0


@dataclass(frozen=True)
class Endpoint:
    """Where the API is and how to authenticate; the token is never printed."""

    url: str
    token: str | None = None
    embedded: bool = False
    # Which service holds the tasks, stable across runs (the embedded service's port is not):
    # the ledger only polls a task on the backend that created it.
    identity: str = ""
    # Whether a submission with a lost answer may be resent: only where the service returns
    # the same task for the same Idempotency-Key (img2svg serve says so in /healthz).
    idempotent: bool = False
    # Per-task answer codes meaning "no such task" (ours; HiDream documents none).
    unknown_task_codes: frozenset[int] = UNKNOWN_TASK_CODES

    def __repr__(self) -> str:
        token = "***" if self.token else None
        return f"Endpoint(url={self.url!r}, token={token}, embedded={self.embedded})"

    @property
    def token_id(self) -> str:
        """Names the token without revealing it: an API may show a task only to its token."""
        return token_id(self.token)


def token_id(token: str | None) -> str:
    if not token:
        return "none"
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunSettings:
    mode: Mode = "fast"
    concurrency: int = 8
    rate_limit_per_minute: float | None = None
    poll_timeout_s: float = 600.0
    # Polls come at least this often, and no more often than the minimum even when tasks are
    # due to finish (see pipeline.batch.Poller).
    poll_interval_s: float = 1.0
    poll_min_interval_s: float = 0.1
    max_in_flight: int | None = None  # tasks in flight at once; None: learned from 429s
    max_image_bytes: int = 20 * 1024 * 1024
    # Folders local images may be read from besides the manifest's own (--allow-local-paths).
    allow_local_paths: tuple[str, ...] = ()
    fetch_timeout_s: float = 30.0
    request_timeout_s: float = 60.0
    # A quota shared with other runs (a Prefect global concurrency limit used as a rate limit).
    shared_limit: str | None = None
    # A task is declared lost (and resubmitted by the next run) only when the API said "no such
    # task" on this many polls in a row, at least this long after it was submitted.
    lost_after_polls: int = 3
    lost_min_age_s: float = 900.0
    # Fresh result URLs asked for when a download answers 403/404/410 (the link expired).
    fresh_url_attempts: int = 3
    # Where the API POSTs each task's end (`img2svg receive`); a submission whose answer was
    # lost waits this long for its callback before it is left `unconfirmed`.
    notify_url: str | None = None
    callback_grace_s: float = 1800.0
