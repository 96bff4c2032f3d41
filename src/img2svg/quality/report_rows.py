"""What the report lists: its rows, its summary, and one bounded pass over a stream of rows.

Rows arrive as an iterator that may hold millions: memory stays bounded by `max_rows`. Failures
are kept in arrival order up to `max_rows`; converted rows go through a heap that keeps the
`max_rows` worst (lowest SSIM; rows without a score after every scored one). Everything else is
only counted (statuses, flags, the SSIM histogram), so the page can say what it leaves out.

A kept row is held as the JSON text the page's script reads, already made safe to embed:
manifest text is clipped to `MAX_TEXT` characters, `<`, `>` and `&` are escaped so it cannot
close the <script> element, links are percent-encoded relative paths, and thumbnails are
embedded only if their bytes are a known raster format.
"""

from __future__ import annotations

import base64
import heapq
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from img2svg.quality.flags import flags_for
from img2svg.quality.score import Quality
from img2svg.run.rows import RowStatus

CONVERTED_STATUS = str(RowStatus.SUCCEEDED)  # every other status is listed as a failure
MAX_TEXT = 2_000
HISTOGRAM_BINS = 20
_THUMB_SIGNATURES = (  # sniffed, so that no other bytes are ever embedded as a picture
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
)


# Encoded bytes, or a function reading them (called only for a row the page lists: a catalog
# of a million rows reads the thumbnails of the 10,000 it shows).
Thumb = bytes | Callable[[], bytes | None] | None


@dataclass(frozen=True)
class ReportRow:
    """One manifest row as the report shows it.

    `image` is the manifest's reference, shown as text. `svg_href` is a path relative to the
    report (`svgs/<row_id>.svg`), percent-encoded by the writer. Thumbnails are encoded WebP,
    PNG, JPEG or GIF bytes (`Quality.source_thumb` / `svg_thumb`); anything else is dropped.
    """

    row_id: str
    image: str
    status: str
    error: str | None = None
    ssim: float | None = None
    psnr: float | None = None
    paths: int | None = None
    svg_bytes: int | None = None
    source_bytes: int | None = None
    flags: tuple[str, ...] = ()
    svg_href: str | None = None
    source_thumb: Thumb = None
    svg_thumb: Thumb = None
    source_zoom: Thumb = None  # a region enlarged 4x: the source (bicubic), and the SVG drawn
    svg_zoom: Thumb = None

    @property
    def converted(self) -> bool:
        return self.status == CONVERTED_STATUS

    @classmethod
    def scored(
        cls,
        row_id: str,
        image: str,
        quality: Quality,
        *,
        svg_href: str | None,
        status: str = CONVERTED_STATUS,
        extra_flags: Iterable[str] = (),
    ) -> ReportRow:
        """A converted row with its scores; flags are `flags_for(quality)` then `extra_flags`."""
        flags = flags_for(quality)
        flags += [name for name in extra_flags if name not in flags]
        return cls(
            row_id=row_id,
            image=image,
            status=status,
            ssim=quality.ssim,
            psnr=quality.psnr,
            paths=quality.paths,
            svg_bytes=quality.svg_bytes,
            source_bytes=quality.source_bytes,
            flags=tuple(flags),
            svg_href=svg_href,
            source_thumb=quality.source_thumb,
            svg_thumb=quality.svg_thumb,
            source_zoom=quality.source_zoom or None,
            svg_zoom=quality.svg_zoom or None,
        )


@dataclass(frozen=True)
class ReportSummary:
    """The run as a whole. Counts left as None are counted from the rows the writer reads."""

    title: str
    mode: str
    created_at: datetime
    total: int | None = None
    by_status: Mapping[str, int] | None = None
    by_flag: Mapping[str, int] | None = None


@dataclass
class Listing:
    """One pass over the rows (`add` each): what the page lists, and what it only counts."""

    max_rows: int
    failures: list[str] = field(default_factory=list)
    # Negated keys and the row itself: turned into JSON (thumbnails read) only if it stays.
    worst: list[tuple[int, float, int, ReportRow]] = field(default_factory=list)
    failed_total: int = 0
    converted_total: int = 0
    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_flag: Counter[str] = field(default_factory=Counter)
    bins: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    unscored: int = 0

    def add(self, row: ReportRow) -> None:
        self.total += 1
        self.by_status[row.status] += 1
        self.by_flag.update(set(row.flags))
        if not row.converted:
            self.failed_total += 1
            if len(self.failures) < self.max_rows:
                self.failures.append(row_json(row))
            return
        self.converted_total += 1
        ssim = row.ssim if row.ssim is not None and math.isfinite(row.ssim) else None
        if ssim is None:
            self.unscored += 1
        else:
            self.bins[min(HISTOGRAM_BINS - 1, max(0, int(ssim * HISTOGRAM_BINS)))] += 1
        # Worst first is ascending (unscored, ssim, arrival). heapq is a min-heap, so the keys
        # are negated: its top is then the best row kept, the one a worse arrival evicts.
        key = (-int(ssim is None), -(ssim or 0.0), -self.converted_total)
        if len(self.worst) < self.max_rows:
            heapq.heappush(self.worst, (*key, row))
        elif key > self.worst[0][:3]:
            heapq.heapreplace(self.worst, (*key, row))

    def worst_first(self) -> list[str]:
        ranked = sorted(self.worst, key=lambda entry: entry[:3], reverse=True)
        return [row_json(entry[3]) for entry in ranked]


def row_json(row: ReportRow) -> str:
    """The row as the script reads it, escaped so it cannot end the <script> element."""
    psnr: float | str | None = row.psnr
    if psnr is not None and math.isinf(psnr):
        psnr = "inf"
    ssim = row.ssim if row.ssim is not None and math.isfinite(row.ssim) else None
    data = {
        "id": _clip(row.row_id),
        "image": _clip(row.image),
        "status": _clip(row.status),
        "error": _clip(row.error) if row.error else None,
        "ssim": ssim,
        "psnr": psnr,
        "paths": row.paths,
        "svg_bytes": row.svg_bytes,
        "source_bytes": row.source_bytes,
        "flags": [_clip(name) for name in row.flags],
        "href": quote(row.svg_href, safe="/") if row.svg_href else None,
        "source_thumb": _data_uri(row.source_thumb),
        "svg_thumb": _data_uri(row.svg_thumb),
        "source_zoom": _data_uri(row.source_zoom),
        "svg_zoom": _data_uri(row.svg_zoom),
    }
    return _script_safe(json.dumps(data, separators=(",", ":")))


def _data_uri(thumb: Thumb) -> str | None:
    if callable(thumb):  # read only now, for a row the page lists
        thumb = thumb()
    if not thumb:
        return None
    mime = _sniff(thumb)
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(thumb).decode('ascii')}"


def _sniff(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _THUMB_SIGNATURES if data.startswith(magic)), None)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _script_safe(text: str) -> str:
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
