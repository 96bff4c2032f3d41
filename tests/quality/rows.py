"""Report rows made without scoring anything: for tests of the page's bounds and order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

from PIL import Image

from img2svg.quality import ReportRow, ReportSummary
from img2svg.quality.score import thumbnail

SUMMARY = ReportSummary(
    title="img2svg run", mode="fast", created_at=datetime(2025, 1, 2, tzinfo=UTC)
)
THUMB = thumbnail(Image.new("RGB", (96, 64), (30, 90, 200)))


def converted(index: int, ssim: float | None, **extra: object) -> ReportRow:
    fields: dict[str, object] = {
        "row_id": f"r{index}",
        "image": f"images/{index}.png",
        "status": "succeeded",
        "ssim": ssim,
        "psnr": None if ssim is None else 20 + 10 * ssim,
        "paths": 10,
        "svg_bytes": 2_000,
        "source_bytes": 1_000,
        "svg_href": f"svgs/r{index}.svg",
        "source_thumb": THUMB,
        "svg_thumb": THUMB,
    }
    return ReportRow(**{**fields, **extra})  # type: ignore[arg-type]


def failed(index: int, reason: str = "the image is empty", status: str = "error") -> ReportRow:
    return ReportRow(row_id=f"f{index}", image=f"missing/{index}.png", status=status, error=reason)


def shuffled_rows(converted_count: int, failed_count: int, seed: int = 0) -> Iterator[ReportRow]:
    """A generator, as the pipeline gives them: SSIMs in random order, failures interleaved."""
    rng = random.Random(seed)
    ssims = [round(i / converted_count, 6) for i in range(converted_count)]
    rng.shuffle(ssims)
    every = max(1, converted_count // max(failed_count, 1))
    failures = 0
    for index, ssim in enumerate(ssims):
        if failures < failed_count and index % every == 0:
            yield failed(failures)
            failures += 1
        yield converted(index, ssim)
    while failures < failed_count:
        yield failed(failures)
        failures += 1
