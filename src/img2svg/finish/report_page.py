"""The pipeline's side of fidelity scores: where they are kept, and the run's `report.html`.

Scores (`ssim`, `psnr`, `paths`, `svg_bytes`) are kept as JSON, without thumbnails, in the
workspace and the ledger: a rerun that reuses an SVG reuses its scores. The two thumbnails
(source and rendered SVG, a few KB each) go to `<out>/.img2svg/thumbs/<key>.{src,svg}.webp`,
beside the outputs, where the report (written by this run or a later one, by any shard's
parent) finds them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from img2svg.quality import Quality, ReportRow, ReportSummary, write_report_html
from img2svg.run.rows import split_flags
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace

SCORE_COLUMNS = ("ssim", "psnr", "paths")
REPORT_FILE = "report.html"


def scores_json(quality: Quality) -> str:
    psnr = None if math.isinf(quality.psnr) else round(quality.psnr, 3)
    return json.dumps(
        {
            "ssim": round(quality.ssim, 5),
            "psnr": psnr,  # null: identical pixels (infinite PSNR)
            "paths": quality.paths,
            "svg_bytes": quality.svg_bytes,
            "source_bytes": quality.source_bytes,
        },
        separators=(",", ":"),
    )


def scores_of(text: str | None) -> dict[str, Any]:
    """{ssim, psnr, paths, ...} of a stored score; {} for none (not scored, or it failed)."""
    if not text:
        return {}
    found = json.loads(text)
    if found and found.get("psnr") is None:
        found["psnr"] = math.inf
    return found


def _thumb(key: str, side: str) -> str:
    return f".img2svg/thumbs/{key}.{side}.webp"


_SIDES = {"src": "source_thumb", "svg": "svg_thumb", "src4x": "source_zoom", "svg4x": "svg_zoom"}


def save_thumbnails(outputs: OutputStore, key: str, quality: Quality) -> None:
    """The two thumbnails and the two 4x crops, for the report to read when it lists the row."""
    for side, name in _SIDES.items():
        image = getattr(quality, name)
        if image:
            outputs.write_bytes(_thumb(key, side), image)


def write_report(workspace: Workspace, outputs: OutputStore, mode: str, title: str) -> str:
    """`<out>/report.html` from the workspace's results: streamed, worst rows kept (bounded)."""
    summary = ReportSummary(title=title, mode=mode, created_at=datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="img2svg-report-") as folder:
        local = os.path.join(folder, REPORT_FILE)
        write_report_html(_report_rows(workspace, outputs), summary, local)
        with outputs.writing(REPORT_FILE) as target:
            shutil.copyfile(local, target)
    return outputs.location(REPORT_FILE)


def _report_rows(workspace: Workspace, outputs: OutputStore) -> Iterator[ReportRow]:
    for rows in workspace.results():
        for row in rows:
            scores = scores_of(row["quality"])
            succeeded = row["status"] == "succeeded"
            key = row["key"]
            yield ReportRow(
                row_id=row["row_id"],
                image=row["image"],
                status=row["status"],
                error=row["error"],
                ssim=scores.get("ssim"),
                psnr=scores.get("psnr"),
                paths=scores.get("paths"),
                svg_bytes=row["svg_bytes"] if succeeded else None,
                source_bytes=scores.get("source_bytes"),
                flags=tuple(split_flags(row["flags"])),
                svg_href=f"svgs/{row['row_id']}.svg" if succeeded else None,
                **{
                    name: partial(_read_thumb, outputs, key, side) if scores and key else None
                    for side, name in _SIDES.items()
                },
            )


def _read_thumb(outputs: OutputStore, key: str, side: str) -> bytes | None:
    """Called by the report only for the rows it lists."""
    return outputs.read_bytes(_thumb(key, side))
