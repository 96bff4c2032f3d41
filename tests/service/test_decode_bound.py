"""Submitted images are decoded a bounded number at a time, so a burst cannot exhaust memory.

Every submission is fully decoded once in the API process to validate it (service/inputs.py);
a 3000x3000 picture takes 36 MB while decoded. Without a bound, a burst of such submissions
decodes on up to 40 threads at once.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from img2svg.api.codes import ErrorCode
from img2svg.service.embedded import EmbeddedService
from img2svg.service.errors import ApiError
from img2svg.service.inputs import DecodeGate
from tests.helpers import SUBMIT, b64

SIDE = 3000
DECODED_BYTES = SIDE * SIDE * 4  # Pillow keeps RGB pixels in 4 bytes
BURST = 24
SLOTS = 2
# Growth of the service's peak RSS allowed during the burst: the 2 decodes in flight plus room
# for the waiting requests' bodies and allocator slack. Measured (2 cores): ~80 MB with 2 slots;
# ~430 MB with 24 decodes at once, ~460 MB with 40 (`--max-concurrent-decodes 40`).
ALLOWED_GROWTH = 5 * DECODED_BYTES  # 180 MB


def noise_png(side: int = SIDE, block: int = 30, seed: int = 0) -> bytes:
    """Random colours in `block`-pixel squares: a small file (~190 KB) that decodes to 36 MB,
    so decoding, not the request bodies, dominates the service's memory."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (side // block, side // block, 3), dtype=np.uint8)
    picture = Image.fromarray(cells, "RGB").resize((side, side), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def peak_rss(pid: int) -> int:
    """VmHWM: the most resident memory the process has had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


async def burst(url: str, body: dict, count: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        return await asyncio.gather(*(client.post(SUBMIT, json=body) for _ in range(count)))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_burst_of_large_images_is_decoded_a_few_at_a_time(start_service) -> None:
    # --fail-rate 1: tasks end without a conversion, so only the request-time decode is measured.
    service: EmbeddedService = start_service(
        "--max-concurrent-decodes", str(SLOTS), "--fail-rate", "1"
    )
    assert service.process is not None
    pid = service.process.pid
    before = peak_rss(pid)
    body = {"image": b64(noise_png()), "mode": "fast"}

    answers = asyncio.run(burst(service.url, body, BURST))

    peak = peak_rss(pid)
    print(
        f"service peak RSS: {before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB after "
        f"{BURST} concurrent {SIDE}x{SIDE} submissions (allowed +{ALLOWED_GROWTH / 2**20:.0f})"
    )
    assert service.process.poll() is None
    assert httpx.get(service.url + "/healthz").status_code == 200
    for answer in answers:
        code = answer.json()["code"]
        assert (answer.status_code, code) in {
            (200, 0),
            (503, ErrorCode.SERVICE_UNAVAILABLE),
            (429, ErrorCode.RATE_LIMITED),
            (429, ErrorCode.CONCURRENCY_LIMITED),
        }, answer.text
    assert peak - before <= ALLOWED_GROWTH


def test_a_caller_waits_a_bounded_time_for_a_decode_slot() -> None:
    release = threading.Event()

    async def scenario() -> tuple[ApiError, float]:
        gate = DecodeGate(slots=1, wait_s=0.2)
        busy = asyncio.create_task(gate.run(release.wait, 5))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(ApiError) as refused:
            await gate.run(lambda: None)
        waited = time.monotonic() - started
        release.set()
        assert await busy is True
        assert await gate.run(lambda: 7) == 7  # the slot is free again
        gate.close()
        return refused.value, waited

    error, waited = asyncio.run(scenario())
    assert error.code is ErrorCode.SERVICE_UNAVAILABLE
    assert error.code.http_status == 503 and error.retry_after_s
    assert 0.15 <= waited < 2
