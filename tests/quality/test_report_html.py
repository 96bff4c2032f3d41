"""`write_report_html` without a browser: bounds, order, escaping, self-containment."""

from __future__ import annotations

import math
import re
import tracemalloc
from pathlib import Path

import pytest

from img2svg.quality import ReportRow, ReportSummary, load_report_data, write_report_html
from img2svg.quality.score import score
from tests.quality.images import flat_png, flat_svg
from tests.quality.rows import SUMMARY, converted, failed, shuffled_rows

SCRIPT = "<script>alert(1)</script>"


def page(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("n", "max_rows"), [(12_000, 10_000), (300, 10_000), (10_000, 10_000)])
def test_row_count_is_bounded_by_max_rows(tmp_path: Path, n: int, max_rows: int) -> None:
    report = tmp_path / "report.html"
    write_report_html(shuffled_rows(n, 25), SUMMARY, report, max_rows=max_rows)
    data = load_report_data(report)
    assert len(data["rows"]) == min(n, max_rows)
    assert len(data["failures"]) == 25
    ssims = [row["ssim"] for row in data["rows"]]
    assert ssims == sorted(ssims)
    assert ssims[-1] < (min(n, max_rows)) / n + 1e-9  # the worst ones, not any ones
    left_out = re.findall(r'<p class="note left-out">([^<]*)</p>', page(report))
    if n > max_rows:
        assert left_out == [
            f"Listing the worst {max_rows:,} of {n:,} converted rows; "
            f"{n - max_rows:,} better-scored rows are left out."
        ]
    else:
        assert left_out == []


def test_failures_are_capped_too_and_the_page_says_so(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    rows = [failed(i) for i in range(8)] + [converted(i, i / 10) for i in range(3)]
    write_report_html(iter(rows), SUMMARY, report, max_rows=5)
    data = load_report_data(report)
    assert [row["id"] for row in data["failures"]] == ["f0", "f1", "f2", "f3", "f4"]
    assert "Listing the first 5 of 8 failures; 3 more are left out of this page." in page(report)


def test_memory_stays_bounded_over_a_long_stream(tmp_path: Path) -> None:
    """100,000 rows through a cap of 100: what is held is the cap, not the stream."""
    report = tmp_path / "report.html"
    tracemalloc.start()
    try:
        write_report_html(shuffled_rows(100_000, 0), SUMMARY, report, max_rows=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(load_report_data(report)["rows"]) == 100
    assert peak < 10 * 1024**2  # 100,000 rows' JSON alone would be ~200 MB


def test_worst_first_then_unscored_in_arrival_order(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    rows = [
        converted(0, 0.9),
        converted(1, None, error="scoring took more than 300 s"),
        converted(2, 0.2),
        converted(3, math.nan),
        converted(4, 0.2),
        converted(5, -0.1),
        converted(6, None),
    ]
    write_report_html(rows, SUMMARY, report, max_rows=5)
    data = load_report_data(report)
    assert [row["id"] for row in data["rows"]] == ["r5", "r2", "r4", "r0", "r1"]
    assert data["rows"][-1]["error"] == "scoring took more than 300 s"
    assert "2 better-scored rows are left out" in page(report)


def test_manifest_text_is_escaped_everywhere(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    hostile = f'"><img src=x onerror=alert(2)>{SCRIPT}</script>&amp;'
    rows = [
        failed(0, reason=f"refused: {hostile}", status=hostile),
        converted(1, 0.5, image=hostile, flags=(hostile,), row_id=hostile),
    ]
    summary = ReportSummary(title=hostile, mode=hostile, created_at=SUMMARY.created_at)
    write_report_html(rows, summary, report)
    text = page(report)
    assert SCRIPT not in text
    assert "<img" not in text
    assert text.count("<script") == 2  # the data block and the page's own script
    data = load_report_data(report)
    assert data["failures"][0]["error"] == f"refused: {hostile}"
    assert data["rows"][0]["image"] == hostile
    assert data["rows"][0]["id"] == hostile


def test_svg_links_stay_relative(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    rows = [
        converted(0, 0.5, svg_href="javascript:alert(1)"),
        converted(1, 0.6, svg_href="svgs/a b#c?.svg"),
    ]
    write_report_html(rows, SUMMARY, report)
    hrefs = [row["href"] for row in load_report_data(report)["rows"]]
    assert hrefs == ["javascript%3Aalert%281%29", "svgs/a%20b%23c%3F.svg"]


def test_only_real_thumbnails_are_embedded(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    rows = [
        converted(0, 0.5),
        converted(1, 0.6, source_thumb=b"<svg onload=alert(1)>", svg_thumb=None),
    ]
    write_report_html(rows, SUMMARY, report)
    first, second = load_report_data(report)["rows"]
    assert first["source_thumb"].startswith("data:image/webp;base64,")
    assert (second["source_thumb"], second["svg_thumb"]) == (None, None)


def test_the_page_loads_nothing_from_anywhere(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    write_report_html([converted(0, 0.5), failed(0)], SUMMARY, report)
    text = page(report)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    assert csp is not None
    assert "default-src 'none'" in csp.group(1)
    assert "unsafe-inline" not in csp.group(1)
    assert not re.search(r"""\b(src|href)\s*=\s*["']?(https?:|//)""", text)
    assert "@import" not in text and "url(" not in text


def test_counts_and_histogram_cover_every_row(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    rows = [converted(i, 0.97, flags=("oversized",)) for i in range(30)]
    rows += [converted(100 + i, 0.1, flags=("low_fidelity",)) for i in range(5)]
    rows += [failed(0), failed(1, status="invalid"), converted(200, None)]
    write_report_html(rows, SUMMARY, report, max_rows=3)  # counts must not stop at the cap
    text = page(report)
    assert "SSIM 0.95-1.00: 30 rows" in text
    assert "SSIM 0.10-0.15: 5 rows" in text
    assert "1 not scored" in text
    status_table = re.search(r'<table class="counts" id="counts-status">.*?</table>', text)
    assert status_table is not None
    assert '<td>succeeded</td><td class="n">36</td>' in status_table.group(0)
    assert '<td>invalid</td><td class="n">1</td>' in status_table.group(0)
    assert '<td>oversized</td><td class="n">30</td>' in text
    assert "38 rows" in text


def test_the_callers_counts_win(tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    summary = ReportSummary(
        title="t",
        mode="slow",
        created_at=SUMMARY.created_at,
        total=1_000_000,
        by_status={"succeeded": 999_000, "error": 1_000},
        by_flag={"near_blank": 7},
    )
    write_report_html([converted(0, 0.5)], summary, report)
    text = page(report)
    assert "1,000,000 rows" in text
    assert '<td>succeeded</td><td class="n">999,000</td>' in text
    assert '<td>near_blank</td><td class="n">7</td>' in text


def test_scored_rows_carry_their_flags(tmp_path: Path) -> None:
    quality = score(flat_png(20, 20, (1, 2, 3)), flat_svg(20, 20, (1, 2, 3)))
    row = ReportRow.scored("a", "x.png", quality, svg_href="svgs/a.svg", extra_flags=["sanitized"])
    assert row.flags == ("sanitized",)
    assert row.converted
    report = tmp_path / "report.html"
    write_report_html([row], SUMMARY, report)
    (listed,) = load_report_data(report)["rows"]
    assert listed["psnr"] == "inf"
    assert listed["ssim"] == pytest.approx(1.0)


def test_a_failed_write_leaves_no_page(tmp_path: Path) -> None:
    report = tmp_path / "report.html"

    def rows() -> object:
        yield converted(0, 0.5)
        raise RuntimeError("the ledger went away")

    with pytest.raises(RuntimeError):
        write_report_html(rows(), SUMMARY, report)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
