"""Contours to path data: straight sides stay straight, corners sharp, curves few and close."""

from __future__ import annotations

import io

import numpy as np
import resvg_py
from PIL import Image, ImageDraw

from img2svg.engine.curves import fit_contour, path_data
from img2svg.engine.trace import vectorize


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def circle(radius: float, count: int = 200) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([50 + radius * np.cos(angles), 50 + radius * np.sin(angles)], axis=1)


def test_a_pixel_aligned_rectangle_is_written_exactly() -> None:
    image = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle((10, 5, 49, 24), fill=(200, 40, 40, 255))
    svg = vectorize(png(image), "slow")
    # 1/16 px grid: the rectangle's corners (10, 5) and (50, 25), four sides, nothing else.
    assert '<path fill="#c82828" d="m800 400v-320h-640v320z"/>' in svg, svg


def test_a_circle_takes_a_few_curves_and_stays_on_it() -> None:
    outline = fit_contour(circle(20), tolerance=0.2, corner_degrees=60)
    assert outline is not None
    assert len(outline.segments) <= 8
    assert all(s.controls is not None for s in outline.segments)
    start = outline.start
    for segment in outline.segments:  # every curve point within tolerance of the circle
        c1, c2 = segment.controls
        u = np.linspace(0, 1, 20)[:, None]
        points = (1 - u) ** 3 * start + 3 * u * (1 - u) ** 2 * c1
        points = points + 3 * u**2 * (1 - u) * c2 + u**3 * segment.end
        radius = np.hypot(*(points - 50).T)
        assert np.abs(radius - 20).max() < 0.25
        start = segment.end


def test_path_data_is_relative_and_compact() -> None:
    square = np.array([[1.0, 1.0], [1.0, 2.0], [1.0, 3.0], [1.0, 4.0], [1.0, 5.0], [1.0, 6.0],
                       [2.0, 6.0], [4.0, 6.0], [6.0, 6.0], [6.0, 4.0], [6.0, 1.0], [4.0, 1.0],
                       [2.0, 1.0]])  # fmt: skip
    outline = fit_contour(square, tolerance=0.2, corner_degrees=60)
    data = path_data([outline], grid=4)
    assert data == "m4 4v20h20v-20z", data


def test_tiny_shapes_are_polygons_without_collinear_points() -> None:
    dot = np.array([[0.0, 0.5], [0.5, 0.0], [1.0, 0.0], [1.5, 0.5], [1.0, 1.0], [0.5, 1.0]])
    outline = fit_contour(dot, tolerance=0.2, corner_degrees=60)
    assert outline is not None
    assert all(s.controls is None for s in outline.segments)
    assert len(outline.segments) == 6


def test_separators_only_where_a_minus_sign_does_not_separate() -> None:
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((8, 8, 55, 55), fill=(30, 30, 200, 255))
    svg = vectorize(png(image), "fast")
    data = svg.split(' d="', 1)[1].split('"', 1)[0]
    assert " -" not in data and ",-" not in data
    rendered = resvg_py.svg_to_bytes(svg_string=svg, width=256, height=256, dpi=96)
    with Image.open(io.BytesIO(bytes(rendered))) as im:
        alpha = np.asarray(im.convert("RGBA"))[..., 3]
    assert alpha[128, 128] == 255 and alpha[5, 5] == 0
