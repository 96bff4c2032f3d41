"""Which SVGs of a run are good: per-row fidelity scores and flags, and `report.html`.

    score(source, svg) -> Quality           in this process (bounded inputs, no crash guard)
    Scorer: await scorer.score(...)          the same in worker processes, crash-contained
    flags_for(quality) -> list[str]          low_fidelity, near_blank, oversized
    write_report_html(rows, summary, path)   one self-contained page, bounded memory

Nothing here imports Prefect: the pipeline's tasks call these functions.
"""

from __future__ import annotations

from img2svg.quality.errors import (
    ScoreCrashed,
    ScoreError,
    ScoreFailed,
    ScoreRefused,
    ScoreTimeout,
)
from img2svg.quality.flags import ALL_FLAGS, LOW_FIDELITY, NEAR_BLANK, OVERSIZED, flags_for
from img2svg.quality.report_html import load_report_data, write_report_html
from img2svg.quality.report_rows import ReportRow, ReportSummary
from img2svg.quality.score import Quality, score
from img2svg.quality.scorer import Scorer

__all__ = [
    "ALL_FLAGS",
    "LOW_FIDELITY",
    "NEAR_BLANK",
    "OVERSIZED",
    "Quality",
    "ReportRow",
    "ReportSummary",
    "ScoreCrashed",
    "ScoreError",
    "ScoreFailed",
    "ScoreRefused",
    "ScoreTimeout",
    "Scorer",
    "flags_for",
    "load_report_data",
    "score",
    "write_report_html",
]
