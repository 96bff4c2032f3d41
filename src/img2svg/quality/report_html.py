"""`report.html`: one self-contained page saying which SVGs of a run are good.

The page opens from disk with no server and no network: thumbnails are `data:` URIs, the
stylesheet and script are inline and pinned by hash in a Content-Security-Policy. The rows
are gathered in one bounded pass (`report_rows.Listing`); summary counts and the SSIM histogram
are plain HTML/SVG made here, and the rows travel as one JSON block that the script renders 200
at a time (`report_assets`). Measured with 10,000 rows carrying the sample images' thumbnails
(~1.1 KB each): a 33 MB file, written in 0.4 s, whose first page Chromium shows after 0.95 s;
all 10,000 rows at once (`#all`) take 4.4 s, which is why they are paged rather than written
as markup.

Manifest text (image references, error messages) is untrusted: the static parts written here
are HTML-escaped, the rows' JSON is made safe to embed by `report_rows`, and the script only
ever sets `textContent`.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any

from img2svg.fsutil import atomic_path
from img2svg.quality.flags import LOW_FIDELITY_SSIM
from img2svg.quality.report_assets import SCRIPT, STYLE, csp
from img2svg.quality.report_rows import HISTOGRAM_BINS, Listing, ReportRow, ReportSummary

__all__ = [
    "DEFAULT_MAX_ROWS",
    "PAGE_SIZE",
    "ReportRow",
    "ReportSummary",
    "load_report_data",
    "write_report_html",
]

DEFAULT_MAX_ROWS = 10_000
PAGE_SIZE = 200
_DATA_ID = "report-data"


def write_report_html(
    rows: Iterable[ReportRow],
    summary: ReportSummary,
    path: str | os.PathLike[str],
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> None:
    """Stream `rows` once and write the page to `path` atomically (whole or not at all)."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    kept = Listing(max_rows)
    for row in rows:
        kept.add(row)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        _write_page(out, kept, summary)


def load_report_data(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON block of a written report: `failures` and `rows` as listed, for tests and tools."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    start_tag = f'<script type="application/json" id="{_DATA_ID}">'
    start = text.index(start_tag) + len(start_tag)
    return json.loads(text[start : text.index("</script>", start)])


def _write_page(out: IO[str], kept: Listing, summary: ReportSummary) -> None:
    by_status = dict(summary.by_status) if summary.by_status is not None else kept.by_status
    by_flag = dict(summary.by_flag) if summary.by_flag is not None else kept.by_flag
    total = summary.total if summary.total is not None else kept.total
    title = html.escape(summary.title)
    out.write(
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp()}">\n'
        '<meta name="referrer" content="no-referrer">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{STYLE}</style></head>\n<body>\n"
        f'<header><h1>{title}</h1>\n<p class="meta">{total:,} rows · mode '
        f"{html.escape(summary.mode)} · {html.escape(summary.created_at.isoformat())}</p>"
        "</header>\n"
        '<noscript><p class="note">The rows are listed by a script: allow it to see them.'
        "</p></noscript>\n"
        '<div class="summary">\n'
        f"{_counts_table('status', by_status)}\n{_counts_table('flag', by_flag)}\n"
        f"{_histogram(kept.bins, kept.unscored)}\n</div>\n"
        f"{_notes(kept)}\n{_controls(by_status, by_flag)}\n"
        f'<section id="failures"><h2>Failures ({kept.failed_total:,}), with their reasons'
        '</h2><div class="pager"></div><div class="list"></div></section>\n'
        f'<section id="rows"><h2>Converted ({kept.converted_total:,}), worst first</h2>'
        '<div class="pager"></div><div class="list"></div></section>\n'
        f'<script type="application/json" id="{_DATA_ID}">'
        f'{{"page_size":{PAGE_SIZE},"failures":['
    )
    _write_joined(out, kept.failures)
    out.write('],"rows":[')
    _write_joined(out, kept.worst_first())
    out.write(f"]}}</script>\n<script>{SCRIPT}</script>\n</body></html>\n")


def _write_joined(out: IO[str], items: Iterable[str]) -> None:
    for index, item in enumerate(items):
        if index:
            out.write(",")
        out.write(item)


def _counts_table(what: str, counts: Mapping[str, int]) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(name)}</td><td class="n">{n:,}</td></tr>'
        for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if n
    )
    empty = f'<tr><td colspan="2">no {what}</td></tr>' if not rows else ""
    return (
        f'<table class="counts" id="counts-{what}"><tr><th>{what}</th><th>rows</th></tr>'
        f"{rows}{empty}</table>"
    )


def _histogram(bins: list[int], unscored: int) -> str:
    """SSIM of every converted row (not only the listed ones), as an inline SVG bar chart."""
    width, height, bar = 420, 130, 20
    top = max(bins) or 1
    parts = [
        f'<svg class="histogram" width="{width}" height="{height + 36}" '
        f'role="img" aria-label="SSIM histogram">'
    ]
    for index, count in enumerate(bins):
        low, high = index / HISTOGRAM_BINS, (index + 1) / HISTOGRAM_BINS
        tall = round(height * count / top)
        css = ' class="low"' if high <= LOW_FIDELITY_SSIM else ""
        parts.append(
            f'<rect{css} x="{10 + index * bar}" y="{height - tall}" width="{bar - 2}" '
            f'height="{tall}"><title>SSIM {low:.2f}-{high:.2f}: {count:,} rows</title></rect>'
        )
    line = 10 + LOW_FIDELITY_SSIM * HISTOGRAM_BINS * bar - 1
    parts += [
        f'<line class="threshold" x1="{line}" x2="{line}" y1="0" y2="{height}"/>',
        f'<text x="10" y="{height + 14}">0</text>',
        f'<text x="{10 + 10 * bar - 8}" y="{height + 14}">0.5</text>',
        f'<text x="{10 + 20 * bar - 8}" y="{height + 14}">1</text>',
        f'<text x="10" y="{height + 30}">SSIM of converted rows; {unscored:,} not scored; '
        "red: low_fidelity</text></svg>",
    ]
    return "".join(parts)


def _notes(kept: Listing) -> str:
    """Say what the page leaves out, so nobody takes a capped list for the whole run."""
    notes = []
    if kept.failed_total > len(kept.failures):
        notes.append(
            f"Listing the first {len(kept.failures):,} of {kept.failed_total:,} failures; "
            f"{kept.failed_total - len(kept.failures):,} more are left out of this page."
        )
    if kept.converted_total > len(kept.worst):
        notes.append(
            f"Listing the worst {len(kept.worst):,} of {kept.converted_total:,} converted rows; "
            f"{kept.converted_total - len(kept.worst):,} better-scored rows are left out."
        )
    return "".join(f'<p class="note left-out">{html.escape(note)}</p>' for note in notes)


def _controls(by_status: Mapping[str, int], by_flag: Mapping[str, int]) -> str:
    def options(names: Iterable[str]) -> str:
        return "".join(f'<option value="{html.escape(n)}">{html.escape(n)}</option>' for n in names)

    return (
        '<div class="controls"><label>status <select id="filter-status">'
        f'<option value="">all</option>{options(sorted(by_status))}</select></label>'
        '<label>flag <select id="filter-flag"><option value="">any</option>'
        f'<option value="-">no flag</option>{options(sorted(by_flag))}</select></label></div>'
    )
