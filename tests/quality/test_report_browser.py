"""report.html in a real browser: every row and reason shown, every thumbnail decoded, nothing
injected ran, nothing loaded from the network, worst first. Also writes tests/output/report.png
for a person to look at.

The report is built from real data: pictures made with Pillow, traced by the engine (vtracer),
scored by the Scorer in worker processes, plus failure rows whose text is hostile.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from img2svg.engine.trace import vectorize
from img2svg.quality import (
    LOW_FIDELITY,
    NEAR_BLANK,
    Quality,
    ReportRow,
    ReportSummary,
    ScoreError,
    Scorer,
    write_report_html,
)
from img2svg.quality.score import thumbnail
from tests.quality.chromium import Chromium, chromium_or_skip
from tests.quality.images import blank_svg, flat_png, logo_png, photo_jpeg
from tests.quality.rows import converted

OUTPUT = Path(__file__).resolve().parents[1] / "output"
ALERT = "<script>alert(1)</script>"
# Each would mark the page if it ever ran as markup.
PAYLOAD = ALERT + '<img src=x onerror="document.body.dataset.pwned=1">'
SUMMARY = ReportSummary(title=f"Sample run {ALERT}", mode="fast", created_at=datetime.now(UTC))

FAILURES = {
    "bad-empty": (ALERT, "error", "the image is empty"),
    "bad-refused": ("https://example.com/a.png", "failed", f"refused by the API: {PAYLOAD}"),
    'bad-"><b>id': ("images/ok.png", "invalid", "the image reference is not a URL or a path"),
}


async def _score_all(pairs: dict[str, tuple[bytes, bytes]]) -> dict[str, Quality | ScoreError]:
    async with Scorer(workers=2) as scorer:

        async def one(source: bytes, svg: bytes) -> Quality | ScoreError:
            try:
                return await scorer.score(source, svg)
            except ScoreError as error:
                return error

        results = await asyncio.gather(*(one(*pair) for pair in pairs.values()))
    return dict(zip(pairs, results, strict=True))


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    """Skip (outside CI) before building anything when there is no browser."""
    return chromium_or_skip()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """out/report.html and out/svgs/*.svg, with what the page must show."""
    out = tmp_path_factory.mktemp("run")
    (out / "svgs").mkdir()
    photo, flat, logo = photo_jpeg(200, 150), flat_png(120, 80, (240, 180, 20)), logo_png(96)
    pairs = {
        "photo": (photo, vectorize(photo, "fast").encode()),
        "flat": (flat, vectorize(flat, "fast").encode()),
        "logo": (logo, vectorize(logo, "fast").encode()),
        "photo-collapsed": (photo, blank_svg(200, 150)),
        "logo-hostile": (logo, vectorize(logo, "fast").encode()),
        "unscorable": (
            logo,
            b'<svg xmlns="http://www.w3.org/2000/svg"><image href="/etc/x"/></svg>',
        ),
    }
    scored = _score_all_sync(pairs)
    rows: list[ReportRow] = []
    for row_id, result in scored.items():
        (out / "svgs" / f"{row_id}.svg").write_bytes(pairs[row_id][1])
        image = PAYLOAD if row_id == "logo-hostile" else f"images/{row_id}.png"
        href = f"svgs/{row_id}.svg"
        if isinstance(result, ScoreError):
            rows.append(ReportRow(row_id, image, "succeeded", error=result.reason, svg_href=href))
        else:
            rows.append(ReportRow.scored(row_id, image, result, svg_href=href))
    failures = [
        ReportRow(row_id, *fields[:2], error=fields[2]) for row_id, fields in FAILURES.items()
    ]
    rows[2:2] = failures  # interleaved with converted rows, as a manifest would have them
    path = out / "report.html"
    write_report_html(iter(rows), SUMMARY, path)
    return path, {"scored": scored, "rows": rows}


def _score_all_sync(pairs: dict[str, tuple[bytes, bytes]]) -> dict[str, Quality | ScoreError]:
    return asyncio.run(_score_all(pairs))


async def _inspect(path: Path, profile: Path, url_suffix: str) -> dict[str, Any]:
    async with Chromium(chromium_or_skip(), profile) as browser:
        seconds = await browser.open(path.as_uri() + url_suffix)
        found = await browser.evaluate(
            """(() => ({
              ids: [...document.querySelectorAll('[data-row-id]')].map(e => e.dataset.rowId),
              failureIds: [...document.querySelectorAll('#failures [data-row-id]')]
                .map(e => e.dataset.rowId),
              reasons: [...document.querySelectorAll('#failures .reason')].map(e => e.textContent),
              images: [...document.querySelectorAll('[data-row-id] .image')]
                .map(e => e.textContent),
              ssims: [...document.querySelectorAll('#rows [data-row-id]')]
                .map(e => e.dataset.ssim === undefined ? null : Number(e.dataset.ssim)),
              flags: [...document.querySelectorAll('#rows [data-row-id]')]
                .map(e => [...e.querySelectorAll('.flag')].map(f => f.textContent)),
              imgs: document.images.length,
              undecoded: [...document.images].filter(i => i.naturalWidth === 0).length,
              reportedImages: Number(document.body.dataset.images),
              broken: Number(document.body.dataset.brokenImages),
              pwned: document.body.dataset.pwned === undefined ? null : 'yes',
              scripts: document.scripts.length,
              foreignImgs: [...document.images].filter(i => !i.src.startsWith('data:')).length,
              bold: document.querySelectorAll('b').length,
              title: document.querySelector('h1').textContent,
              links: [...document.querySelectorAll('#rows a')].map(a => a.href),
            }))()"""
        )
        found["seconds"] = seconds
        found["dialogs"] = list(browser.dialogs)
        found["requests"] = browser.requests()
        found["log"] = browser.log_entries()
        if url_suffix == "#all":
            found["png"] = await browser.screenshot(OUTPUT / "report.png")
        return found


def test_every_row_and_reason_is_shown_and_nothing_injected_runs(
    report: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, expected = report
    seen = asyncio.run(_inspect(path, tmp_path / "profile", "#all"))

    rows: list[ReportRow] = expected["rows"]
    assert sorted(seen["ids"]) == sorted(row.row_id for row in rows)
    assert seen["failureIds"] == list(FAILURES)  # in arrival order
    assert seen["reasons"] == [reason for _, _, reason in FAILURES.values()]
    assert PAYLOAD in seen["images"] and ALERT in seen["images"]  # shown as text
    assert seen["title"] == SUMMARY.title

    # Every thumbnail and 4x crop decoded: by the page's own count and by the DOM's.
    converted_rows = [row for row in rows if row.converted and row.source_thumb]
    zoomed = [row for row in converted_rows if row.source_zoom and row.svg_zoom]
    assert zoomed, "the scored rows carry their 4x crops"
    assert seen["imgs"] == seen["reportedImages"] == 2 * len(converted_rows) + 2 * len(zoomed)
    assert seen["broken"] == seen["undecoded"] == 0
    assert seen["foreignImgs"] == 0

    # Nothing from the manifest ran or became markup; nothing was fetched.
    assert seen["dialogs"] == []
    assert seen["pwned"] is None
    assert seen["scripts"] == 2
    assert seen["bold"] == 0
    assert all(url.startswith(("file:", "data:")) for url in seen["requests"]), seen["requests"]
    assert not [entry for entry in seen["log"] if "Content Security Policy" in entry], seen["log"]

    # Worst first; the row that could not be scored comes last, with its reason.
    ssims = seen["ssims"]
    assert ssims[-1] is None and None not in ssims[:-1]
    assert ssims[:-1] == sorted(ssims[:-1])
    scored: dict[str, Quality | ScoreError] = expected["scored"]
    assert isinstance(scored["unscorable"], ScoreError)
    assert seen["ids"][-1] == "unscorable"
    collapsed = next(i for i, row_id in enumerate(seen["ids"]) if row_id == "photo-collapsed")
    assert seen["ids"][len(FAILURES)] == "photo-collapsed"
    assert seen["flags"][collapsed - len(FAILURES)] == [LOW_FIDELITY, NEAR_BLANK]
    assert all(link.startswith(path.parent.as_uri() + "/svgs/") for link in seen["links"])
    for link in seen["links"]:
        assert Path(link.removeprefix("file://")).is_file()

    png = seen["png"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (1280, 2000)
    assert (OUTPUT / "report.png").read_bytes() == png


def test_pages_of_200_and_all_on_demand_with_10000_rows(tmp_path: Path) -> None:
    """The 10,000-row page opens paged: 200 rows rendered, every thumbnail decoded."""
    thumbs = [thumbnail_of(seed) for seed in range(8)]
    rows = (
        converted(i, i / 10_000, source_thumb=thumbs[i % 8], svg_thumb=thumbs[(i + 3) % 8])
        for i in range(10_000)
    )
    path = tmp_path / "report.html"
    started = time.monotonic()
    write_report_html(rows, SUMMARY, path)
    written_s = time.monotonic() - started
    seen = asyncio.run(_inspect(path, tmp_path / "profile", ""))
    assert seen["ids"] == [f"r{i}" for i in range(200)]
    assert seen["imgs"] == seen["reportedImages"] == 400
    assert seen["broken"] == seen["undecoded"] == 0
    assert seen["ssims"] == sorted(seen["ssims"])

    async def second_page() -> list[str]:
        async with Chromium(chromium_or_skip(), tmp_path / "profile2") as browser:
            await browser.open(path.as_uri())
            next_button = (
                "[...document.querySelectorAll('#rows .pager button')]"
                ".find(b => b.textContent.startsWith('next')).click()"
            )
            return await _after(browser, next_button)

    assert asyncio.run(second_page()) == [f"r{i}" for i in range(200, 400)]
    size_mb = path.stat().st_size / 1e6
    print(  # measured, not asserted: -s shows it
        f"\n10,000 rows: {size_mb:.1f} MB, written in {written_s:.2f} s, "
        f"first page ready in Chromium after {seen['seconds']:.2f} s"
    )


RENDERED_IDS = "[...document.querySelectorAll('[data-row-id]')].map(e => e.dataset.rowId)"


async def _after(browser: Chromium, action: str) -> list[str]:
    """Run `action` (which re-renders the page), wait until it is ready, list the row ids."""
    return await browser.evaluate(
        f"""new Promise(resolve => {{
          {action};
          const poll = () => document.body.dataset.ready === '1'
            ? resolve({RENDERED_IDS}) : setTimeout(poll, 10);
          poll();
        }})"""
    )


def _filter(status: str, flag: str) -> str:
    return (
        f"document.getElementById('filter-status').value = {json.dumps(status)};"
        f"document.getElementById('filter-flag').value = {json.dumps(flag)};"
        "document.getElementById('filter-flag').dispatchEvent(new Event('change'))"
    )


def test_filters_by_status_and_flag(report: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, expected = report
    every = [row.row_id for row in expected["rows"]]

    async def main() -> dict[tuple[str, str], list[str]]:
        async with Chromium(chromium_or_skip(), tmp_path / "profile") as browser:
            await browser.open(path.as_uri())
            cases = [("", "near_blank"), ("failed", ""), ("succeeded", LOW_FIDELITY), ("", "-")]
            return {case: await _after(browser, _filter(*case)) for case in cases}

    seen = asyncio.run(main())
    assert seen[("", "near_blank")] == ["photo-collapsed"]
    assert seen[("failed", "")] == ["bad-refused"]
    assert seen[("succeeded", LOW_FIDELITY)] == ["photo-collapsed"]
    assert sorted(seen[("", "-")]) == sorted(set(every) - {"photo-collapsed"})


def thumbnail_of(seed: int) -> bytes:
    with Image.open(io.BytesIO(photo_jpeg(160, 120, seed=seed))) as image:
        return thumbnail(image.convert("RGB"))
