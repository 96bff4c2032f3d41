"""Quality you can see, end to end: a run scores every new SVG against its source, flags the
suspicious ones, and hands back a report.html that a real browser opens from disk.

The scores are checked against an independent measurement with the same recipe
(`engine.fidelity`, which renders the written SVG itself), not against the pipeline's own.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pandas as pd
import pytest

from flows.convert import convert
from img2svg.engine.fidelity import fidelity
from img2svg.quality import load_report_data
from tests.helpers import logo_png
from tests.quality.chromium import Chromium, chromium_or_skip
from tests.quality.images import flat_png, photo_jpeg


def _catalog(folder: Path) -> Path:
    """Images this machine's service has never seen: photos, a logo, a flat colour; and a row
    naming a file that does not exist."""
    images = folder / "images"
    images.mkdir(parents=True)
    files = {
        "photo-a": ("a.jpg", photo_jpeg(160, 120, seed=11)),
        "photo-b": ("b.jpg", photo_jpeg(120, 90, seed=12)),
        "logo": ("logo.png", logo_png(80, seed=13)),
        "flat": ("flat.png", flat_png(64, 48, (40, 120, 200))),
    }
    lines = ["id,image_url"]
    for row_id, (name, data) in files.items():
        (images / name).write_bytes(data)
        lines.append(f"{row_id},images/{name}")
    lines.append("missing,images/nowhere.png")
    manifest = folder / "quality.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _run(manifest: Path, out: Path, **params) -> pd.DataFrame:
    state = convert(
        manifest=str(manifest),
        out=str(out),
        mode="slow",
        id_column="id",
        max_failure_ratio=1.0,
        return_state=True,
        **params,
    )
    assert state.is_completed(), state.message
    return pd.read_parquet(out / "results.parquet").set_index("row_id")


def test_scores_match_an_independent_measurement_and_the_report_shows_every_row(
    tmp_path: Path,
) -> None:
    manifest = _catalog(tmp_path / "catalog")
    out = tmp_path / "out"
    results = _run(manifest, out)

    converted = results[results["status"] == "succeeded"]
    assert sorted(converted.index) == ["flat", "logo", "photo-a", "photo-b"]
    for row_id, row in converted.iterrows():
        source = (manifest.parent / "images" / _file_of(manifest, row_id)).read_bytes()
        svg = (out / "svgs" / f"{row_id}.svg").read_text()
        measured = fidelity(source, svg)
        assert abs(row["ssim"] - measured.ssim) <= 0.03, (row_id, row["ssim"], measured.ssim)
        if math.isinf(measured.psnr):
            assert math.isinf(row["psnr"])
        else:
            assert abs(row["psnr"] - measured.psnr) <= 0.5
        assert row["paths"] >= 1
        assert row["svg_bytes"] == len(svg.encode())
    assert results.loc["missing", "status"] == "invalid"
    assert pd.isna(results.loc["missing", "ssim"])

    report = out / "report.html"
    data = load_report_data(report)
    listed = [row["id"] for row in data["rows"]]
    assert sorted(listed) == sorted(converted.index)
    ssims = [row["ssim"] for row in data["rows"]]
    assert ssims == sorted(ssims)  # worst first
    (failure,) = data["failures"]
    assert failure["id"] == "missing" and "no such file" in failure["error"]

    seen = asyncio.run(_open_in_chromium(report, tmp_path / "profile"))
    assert sorted(seen["ids"]) == sorted([*converted.index, "missing"])
    assert seen["images"] == 4 * len(converted)  # thumbnails and 4x crops: source and SVG
    assert seen["undecoded"] == 0
    assert any("no such file" in reason for reason in seen["reasons"])

    # Run again: the SVGs are reused, and so are their scores (nothing is scored twice).
    again = _run(manifest, out)
    assert again["reused"].loc[list(converted.index)].all()
    assert again.loc[list(converted.index), "ssim"].tolist() == converted["ssim"].tolist()


def test_no_score_skips_scoring(tmp_path: Path) -> None:
    manifest = _catalog(tmp_path / "catalog")
    out = tmp_path / "out"
    results = _run(manifest, out, score=False)
    assert (results["status"] == "succeeded").sum() == 4
    assert results["ssim"].isna().all()
    assert not (out / ".img2svg" / "thumbs").exists()
    assert load_report_data(out / "report.html")["rows"]  # the report still lists the rows


def _file_of(manifest: Path, row_id: str) -> str:
    for line in manifest.read_text().splitlines()[1:]:
        found, _, image = line.partition(",")
        if found == row_id:
            return image.removeprefix("images/")
    raise KeyError(row_id)


async def _open_in_chromium(report: Path, profile: Path) -> dict:
    async with Chromium(chromium_or_skip(), profile) as browser:
        await browser.open(report.as_uri() + "#all")
        return await browser.evaluate(
            """(() => ({
              ids: [...document.querySelectorAll('[data-row-id]')].map(e => e.dataset.rowId),
              reasons: [...document.querySelectorAll('#failures .reason')].map(e => e.textContent),
              images: document.images.length,
              undecoded: [...document.images].filter(i => i.naturalWidth === 0).length,
            }))()"""
        )


@pytest.fixture(autouse=True)
def _state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMG2SVG_STATE_DIR", str(tmp_path / "state"))
