"""The state of one manifest row as it moves through the pipeline, and the result columns."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True)
class ManifestRow:
    """A manifest row as staged: its place, its unique id, its image reference."""

    index: int
    row_id: str
    image: str
    invalid_reason: str | None = None
    version: str = ""


class RowStatus(StrEnum):
    PENDING = "pending"  # read from the manifest, not yet submitted
    SUBMITTED = "submitted"  # accepted by the API, not yet finished
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # task_status 3
    REJECTED = "rejected"  # task_status 4 (content moderation)
    TIMED_OUT = "timed_out"  # still unfinished at the poll deadline
    INVALID = "invalid"  # the manifest row itself is unusable; never submitted
    ERROR = "error"  # refused, unreachable after retries, download or SVG check failed
    # Sent, but its answer was lost, to an API that does not dedupe resent submissions: a task
    # may exist and be billed. Never resent automatically (see --resubmit-unconfirmed).
    UNCONFIRMED = "unconfirmed"
    SKIPPED = "skipped"  # not submitted this run because --limit was reached; the next run will

    @property
    def final(self) -> bool:
        return self not in (RowStatus.PENDING, RowStatus.SUBMITTED)


RESULT_COLUMNS = [
    "row_id",
    "image",
    "mode",
    "status",
    "task_id",
    "sub_task_id",
    "svg_url",
    "svg_path",
    "svg_bytes",
    "error",
    "attempts",
    "submitted_at",
    "finished_at",
    "duration_s",
    "reused",
    "flags",
    "ssim",
    "psnr",
    "paths",
]


class RowFlag(StrEnum):
    """Notes on a row's outcome, whatever its status: `flags` in the results holds their names
    joined by commas (empty when none), in this order."""

    SANITIZED = "sanitized"  # the SVG held unsafe content (scripts, external links) now removed
    # From the fidelity score (thresholds in img2svg.quality.flags):
    LOW_FIDELITY = "low_fidelity"  # SSIM below 0.5: the trace lost the picture
    NEAR_BLANK = "near_blank"  # the SVG is one flat colour where its source is not
    OVERSIZED = "oversized"  # the SVG is far larger than its source (25x, and over 200 KB)
    UNSCORED = "unscored"  # the score could not be computed (source gone, SVG unrenderable)


def join_flags(flags: Iterable[str]) -> str:
    """The `flags` cell: each name once, in RowFlag's order (unknown names last, sorted)."""
    found = set(flags)
    known = [str(flag) for flag in RowFlag if flag in found]
    return ",".join(known + sorted(found - set(known)))


def split_flags(text: str | None) -> list[str]:
    return [name for name in (text or "").split(",") if name]


@dataclass
class RowState:
    index: int  # position in the manifest: results keep manifest order
    row_id: str
    image: str  # the manifest's image reference (data: URIs abbreviated)
    mode: str
    status: RowStatus = RowStatus.PENDING
    task_id: str | None = None
    sub_task_id: str | None = None
    svg_url: str | None = None
    svg_path: str | None = None
    svg_bytes: int | None = None
    error: str | None = None
    attempts: int = 0
    submitted_at: float | None = None  # unix seconds
    finished_at: float | None = None
    # True when this row created no task of its own: its SVG came from an earlier run, or from
    # another row of the manifest holding the same image.
    reused: bool = False
    flags: list[str] = field(default_factory=list)  # RowFlag names

    def flag(self, flag: RowFlag) -> None:
        if flag not in self.flags:
            self.flags.append(str(flag))

    def finish(self, status: RowStatus, now: float, error: str | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = now


def shard_of(image: str, shards: int) -> int:
    """Which of `shards` a row belongs to, from its image reference alone: every row naming the
    same image the same way lands in the same shard, where it is submitted once, and any process
    computes it alike. The same bytes under two names may land in two shards: the ledger's claim
    then lets one submit, and the other's rows are `skipped` until the next run reuses the SVG."""
    digest = hashlib.sha256(image.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards
