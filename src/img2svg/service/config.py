"""Everything `img2svg serve` can be told, in one typed place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from img2svg.engine.decode import DecodeLimits
from img2svg.engine.trace import EngineLimits


@dataclass(frozen=True)
class FaultConfig:
    """Deterministic fault injection for tests; all rates are probabilities in [0, 1]."""

    latency_s: float = 0.0
    fault_rate: float = 0.0
    fail_rate: float = 0.0
    reject_rate: float = 0.0
    slow_response_s: float = 2.0
    seed: int | None = None

    @property
    def enabled(self) -> bool:
        return any((self.latency_s, self.fault_rate, self.fail_rate, self.reject_rate))


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, which containers narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServiceConfig:
    data_dir: Path = Path(".img2svg-service")
    tokens: frozenset[str] = frozenset()
    rate_limit_per_minute: int | None = None
    max_concurrency: int | None = None
    allow_private_urls: bool = False
    # False gives HiDream's documented semantics: Idempotency-Key is ignored and every processed
    # POST creates (bills) a task. The default dedupes a resent key (ours, not HiDream's).
    idempotency_keys: bool = True
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    max_image_bytes: int = 20 * 1024 * 1024
    # Submitted images are fully decoded once in the API process (inputs.py); this many at once,
    # since a decode holds up to ~4 bytes per pixel (160 MB at the 40 Mpx bound). A caller waits
    # up to `decode_wait_s` for a slot, then is answered 503 with Retry-After.
    max_concurrent_decodes: int = field(default_factory=usable_cpus)
    decode_wait_s: float = 30.0
    fetch_timeout_s: float = 20.0
    max_batch_ids: int = 100
    callback_timeout_s: float = 5.0
    callback_attempts: int = 3
    callback_interval_s: float = 1.0
    engine: EngineLimits = field(default_factory=EngineLimits)
    faults: FaultConfig = field(default_factory=FaultConfig)

    @property
    def max_body_bytes(self) -> int:
        """A base64 image is 4/3 of its bytes; leave room for the other JSON fields."""
        return self.max_image_bytes * 4 // 3 + 64 * 1024

    @property
    def decode_limits(self) -> DecodeLimits:
        return self.engine.decode
