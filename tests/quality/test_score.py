"""`score` and `flags_for`: the engine's fidelity numbers, drawn elements, bounds, JSON, flags."""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from img2svg.engine.decode import DecodeLimits
from img2svg.engine.fidelity import fidelity
from img2svg.engine.trace import EngineLimits, vectorize
from img2svg.quality import (
    LOW_FIDELITY,
    NEAR_BLANK,
    OVERSIZED,
    Quality,
    ScoreRefused,
    flags_for,
    score,
)
from img2svg.quality import flags as thresholds
from img2svg.quality.score import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SVG_BYTES,
    THUMB_SIDE,
    ZOOM,
    ZOOM_CROP,
)
from tests.engine.test_decode import png_with_ihdr
from tests.quality.images import blank_svg, encode, flat_png, flat_svg, logo_png, photo_jpeg

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "images"
SVG_OPEN = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'


def test_identical_svg_of_a_flat_image_scores_one() -> None:
    quality = score(flat_png(64, 48, (10, 200, 30)), flat_svg(64, 48, (10, 200, 30)))
    assert quality.ssim == pytest.approx(1.0, abs=1e-6)
    assert math.isinf(quality.psnr)
    assert quality.paths == 1
    assert (quality.width, quality.height) == (64, 48)
    assert quality.source_luma_std == quality.svg_luma_std == 0.0
    assert flags_for(quality) == []  # one colour traced as one colour is not "near blank"


@pytest.mark.parametrize("name", ["logo.png", "exif_rotated.jpg", "icon_alpha.png", "cmyk.jpg"])
def test_same_numbers_as_the_engines_fidelity(name: str) -> None:
    """The recipe is the engine's: upright, composited on white, at the source's size."""
    source = (SAMPLES / name).read_bytes()
    svg = vectorize(source, "fast")
    expected = fidelity(source, svg)
    quality = score(source, svg.encode())
    assert (quality.ssim, quality.psnr) == (expected.ssim, expected.psnr)
    assert quality.source_bytes == len(source)
    assert quality.svg_bytes == len(svg.encode())


def test_blank_svg_of_a_photo_is_near_blank_and_low_fidelity() -> None:
    source = photo_jpeg()
    quality = score(source, blank_svg(160, 120))
    assert quality.ssim < thresholds.LOW_FIDELITY_SSIM
    assert quality.svg_luma_std == 0.0
    assert quality.source_luma_std > thresholds.NEAR_BLANK_SOURCE_MIN_STD
    assert flags_for(quality) == [LOW_FIDELITY, NEAR_BLANK]


def test_a_normal_trace_of_a_photo_is_not_flagged() -> None:
    source = photo_jpeg()
    quality = score(source, vectorize(source, "fast").encode())
    assert quality.ssim > 0.6
    assert flags_for(quality) == []


def test_huge_svg_of_a_small_source_is_oversized() -> None:
    source = photo_jpeg(64, 48)
    cells = [
        f'<rect x="{i % 64}" y="{i // 64 % 48}" width="1" height="1" fill="#{i % 4096:03x}"/>'
        for i in range(9_000)
    ]
    svg = f'{SVG_OPEN} width="64" height="48">{"".join(cells)}</svg>'.encode()
    assert len(svg) > thresholds.OVERSIZED_MIN_BYTES
    assert len(svg) > thresholds.OVERSIZED_RATIO * len(source)
    quality = score(source, svg)
    assert quality.paths == 9_000
    assert OVERSIZED in flags_for(quality)


def test_drawn_elements_are_counted_wherever_they_are() -> None:
    drawn = (
        '<path d="M0 0h4v4z"/><rect width="2" height="2"/><circle r="1"/>'
        '<ellipse rx="1" ry="2"/><line x2="3" y2="3"/><polyline points="0,0 1,1"/>'
        '<polygon points="0,0 1,1 0,1"/><use href="#s"/><text>hi</text>'
        '<image width="1" height="1" href="data:image/png;base64,'
        + base64.b64encode(encode(Image.new("RGB", (1, 1)))).decode()
        + '"/>'
    )
    containers = (
        '<defs><symbol id="s"><path d="M0 0h1v1z"/></symbol></defs>'
        '<mask id="m"><rect width="8" height="8" fill="white"/></mask>'
        '<g><g><circle r="2"/></g></g><title>not drawn</title>'
    )
    foreign = '<x:path xmlns:x="urn:other"/>'  # a path outside the SVG namespace is nothing
    svg = f'{SVG_OPEN} width="8" height="8">{drawn}{containers}{foreign}</svg>'
    assert score(flat_png(8, 8, (255, 255, 255)), svg.encode()).paths == 10 + 3


def test_json_round_trips_an_infinite_psnr_as_null() -> None:
    quality = score(flat_png(20, 20, (1, 2, 3)), flat_svg(20, 20, (1, 2, 3)))
    assert math.isinf(quality.psnr)
    text = quality.to_json()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert data["psnr"] is None
    assert data["v"] == 1
    assert Quality.from_json(text) == quality
    assert Quality.from_json(text.encode()) == quality


def test_json_round_trips_a_finite_score() -> None:
    source = photo_jpeg()
    quality = score(source, vectorize(source, "fast").encode())
    assert math.isfinite(quality.psnr)
    assert Quality.from_json(quality.to_json()) == quality
    assert Quality.from_dict(quality.to_dict()) == quality


def test_json_of_an_unknown_version_is_refused() -> None:
    quality = score(flat_png(8, 8, (9, 9, 9)), flat_svg(8, 8, (9, 9, 9)))
    data = {**quality.to_dict(), "v": 99}
    with pytest.raises(ValueError, match="version"):
        Quality.from_dict(data)


@pytest.mark.parametrize("size", [(640, 480), (90, 300), (40, 30)])
def test_thumbnails_are_small_webps_that_fit_the_box(size: tuple[int, int]) -> None:
    width, height = size
    source = photo_jpeg(width, height)
    quality = score(source, vectorize(source, "fast").encode())
    for thumb in (quality.source_thumb, quality.svg_thumb):
        assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"
        assert len(thumb) < 8_000
        with Image.open(io.BytesIO(thumb)) as image:
            assert max(image.size) == min(THUMB_SIDE, max(size))
            assert image.size[0] / image.size[1] == pytest.approx(width / height, rel=0.05)


def test_the_svg_thumbnail_is_the_rendering() -> None:
    """A blank SVG of a red picture gives a white thumbnail, the source's a red one."""
    quality = score(flat_png(50, 50, (220, 0, 0)), blank_svg(50, 50))
    with Image.open(io.BytesIO(quality.svg_thumb)) as svg_thumb:
        red, green, blue = svg_thumb.convert("RGB").getpixel((25, 25))
        assert min(red, green, blue) > 240
    with Image.open(io.BytesIO(quality.source_thumb)) as source_thumb:
        red, green, blue = source_thumb.convert("RGB").getpixel((25, 25))
        assert red > 180 and green < 50 and blue < 50


def test_bounds_are_the_engines() -> None:
    assert DecodeLimits().max_pixels == DEFAULT_MAX_PIXELS
    assert EngineLimits().max_svg_bytes == DEFAULT_MAX_SVG_BYTES


def test_a_source_over_the_pixel_bound_is_refused_before_decoding() -> None:
    with pytest.raises(ScoreRefused, match="pixels"):
        score(png_with_ihdr(20_000, 20_000), blank_svg(10, 10))  # 400 Mpx declared, 50 bytes
    with pytest.raises(ScoreRefused, match="pixels"):
        score(flat_png(20, 20, (0, 0, 0)), blank_svg(20, 20), max_pixels=399)


def test_an_svg_over_the_byte_bound_is_refused() -> None:
    with pytest.raises(ScoreRefused, match="bytes"):
        score(flat_png(8, 8, (0, 0, 0)), flat_svg(8, 8, (0, 0, 0)), max_svg_bytes=50)


@pytest.mark.parametrize(
    ("svg", "reason"),
    [
        (b"<svg", "not well-formed"),
        (b"", "not well-formed"),
        (b'<html xmlns="http://www.w3.org/1999/xhtml"/>', "not <svg>"),
        (
            b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b'<svg xmlns="http://www.w3.org/2000/svg">&b;</svg>',
            "forbidden XML",
        ),
        (f'{SVG_OPEN}><image href="/etc/passwd"/></svg>'.encode(), "outside resource"),
        (
            f'{SVG_OPEN}><image xlink:href="file:///tmp/x.png"/></svg>'.encode(),
            "outside resource",
        ),
        (f'{SVG_OPEN}><use href="other.svg#a"/></svg>'.encode(), "outside resource"),
    ],
)
def test_unsafe_or_broken_svgs_are_refused(svg: bytes, reason: str) -> None:
    with pytest.raises(ScoreRefused, match=reason):
        score(flat_png(8, 8, (0, 0, 0)), svg)


def test_a_standard_doctype_is_accepted() -> None:
    svg = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
        b'"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n' + flat_svg(8, 8, (5, 5, 5))
    )
    assert score(flat_png(8, 8, (5, 5, 5)), svg).ssim == pytest.approx(1.0)


def test_a_source_that_is_not_an_image_is_refused() -> None:
    with pytest.raises(ScoreRefused, match="source image was refused"):
        score(b"GIF89a but not really", blank_svg(8, 8))


def test_logo_trace_is_faithful_and_unflagged() -> None:
    source = logo_png(96)
    quality = score(source, vectorize(source, "fast").encode())
    assert quality.ssim > 0.9
    assert flags_for(quality) == []


# flags_for on hand-made scores: each threshold on both sides.
BASE = Quality(
    ssim=0.9,
    psnr=30.0,
    paths=10,
    svg_bytes=1_000,
    source_bytes=1_000,
    width=10,
    height=10,
    source_luma_std=40.0,
    svg_luma_std=40.0,
    source_thumb=b"",
    svg_thumb=b"",
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, []),
        ({"ssim": thresholds.LOW_FIDELITY_SSIM}, []),
        ({"ssim": thresholds.LOW_FIDELITY_SSIM - 0.01}, [LOW_FIDELITY]),
        ({"svg_luma_std": 1.9}, [NEAR_BLANK]),
        ({"svg_luma_std": 1.9, "source_luma_std": 7.9}, []),  # the source was blank too
        ({"svg_luma_std": 2.1}, []),
        ({"svg_bytes": 300_000, "source_bytes": 10_000}, [OVERSIZED]),
        ({"svg_bytes": 300_000, "source_bytes": 20_000}, []),  # 15x: a normal slow trace
        ({"svg_bytes": 150_000, "source_bytes": 1_000}, []),  # 150x but small: an icon
        (
            {"ssim": 0.1, "svg_luma_std": 0.0, "svg_bytes": 10**6, "source_bytes": 100},
            [LOW_FIDELITY, NEAR_BLANK, OVERSIZED],
        ),
    ],
)
def test_flag_thresholds(changes: dict[str, float], expected: list[str]) -> None:
    assert flags_for(replace(BASE, **changes)) == expected


def test_the_4x_crops_show_the_busiest_region_and_the_vector_stays_sharp() -> None:
    """A disc drawn as a raster and as a vector: both crops frame an edge of it, enlarged 4x;
    the source's (bicubic) is a blur band, the SVG's a clean edge."""
    raster = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(raster).ellipse((12, 12, 52, 52), fill=(200, 0, 0))
    buffer = io.BytesIO()
    raster.save(buffer, "PNG")
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<circle cx="32" cy="32" r="20" fill="#c80000"/></svg>'
    )
    quality = score(buffer.getvalue(), svg)

    def blur(image: bytes) -> int:
        with Image.open(io.BytesIO(image)) as opened:
            assert opened.size == (ZOOM_CROP * ZOOM, ZOOM_CROP * ZOOM)
            green = np.asarray(opened.convert("RGB"))[:, :, 1].astype(int)
        assert green.min() < 40 and green.max() > 215  # an edge of the disc is in the crop
        return int(((green > 40) & (green < 215)).sum())

    assert blur(quality.svg_zoom) * 2 < blur(quality.source_zoom)
