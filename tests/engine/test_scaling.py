"""Vectors that scale (issue #18), on drawings of our own in `drawings/`.

Each drawing is rasterized with resvg at 128 px (transparent background), converted, and the
SVG is rendered at 4x and compared with the drawing rendered at 4x, both on white, as
`bench/vectors.py` does on public sets. The bench prints the numbers; here the properties
are checked: sharper than enlarged pixels, small, transparent around the drawing.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import resvg_py
from PIL import Image
from scipy import ndimage

from img2svg.engine import trace
from img2svg.engine.fidelity import compare, on_white, render_rgba, render_svg
from img2svg.engine.trace import vectorize

DRAWINGS = Path(__file__).resolve().parent / "drawings"
NAMES = sorted(p.stem for p in DRAWINGS.glob("*.svg"))
SIDE = 128
SCALE = 4
FAST_BYTES = 5_000  # issue #18: fast stays under 5 KB on icons


def rasterize(name: str, side: int) -> Image.Image:
    """The drawing with its longest side `side` px, RGBA on transparency."""
    text = (DRAWINGS / f"{name}.svg").read_text()
    with Image.open(io.BytesIO(bytes(resvg_py.svg_to_bytes(svg_string=text)))) as natural:
        width, height = natural.size
    size = (round(width * side / max(width, height)), round(height * side / max(width, height)))
    return render_rgba(text, *size)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def rendered_rgba(svg: str, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(render_rgba(svg, *size))


@pytest.fixture(scope="module")
def converted() -> dict[tuple[str, str], str]:
    """Each drawing converted once per mode, shared by the tests below."""
    return {
        (name, mode): vectorize(png(rasterize(name, SIDE)), mode)
        for name in NAMES
        for mode in ("fast", "slow")
    }


def test_there_are_drawings() -> None:
    assert {"face", "flag", "logo", "strokes"} <= set(NAMES)


@pytest.mark.parametrize("mode", ["fast", "slow"])
@pytest.mark.parametrize("name", NAMES)
def test_at_4x_the_svg_beats_bicubic_upscaling(
    converted: dict[tuple[str, str], str], name: str, mode: str
) -> None:
    source = rasterize(name, SIDE)
    truth = rasterize(name, SIDE * SCALE)
    big = truth.size
    reference = on_white(truth)
    enlarged = np.asarray(Image.fromarray(on_white(source)).resize(big, Image.Resampling.BICUBIC))
    bicubic = compare(reference, enlarged).ssim
    ours = compare(reference, render_svg(converted[name, mode], *big)).ssim
    assert ours > bicubic, (ours, bicubic)


@pytest.mark.parametrize("name", NAMES)
def test_fast_is_small_and_slow_is_not_much_larger(
    converted: dict[tuple[str, str], str], name: str
) -> None:
    fast = len(converted[name, "fast"].encode())
    slow = len(converted[name, "slow"].encode())
    assert fast <= FAST_BYTES, fast
    assert slow <= 3 * FAST_BYTES, slow


@pytest.mark.parametrize("mode", ["fast", "slow"])
@pytest.mark.parametrize("name", NAMES)
def test_transparent_around_the_drawing_and_opaque_inside(
    converted: dict[tuple[str, str], str], name: str, mode: str
) -> None:
    truth = np.asarray(rasterize(name, SIDE * SCALE))[..., 3]
    alpha = rendered_rgba(converted[name, mode], (truth.shape[1], truth.shape[0]))[..., 3]
    margin = np.ones((2 * SCALE + 1, 2 * SCALE + 1), dtype=bool)  # one source pixel
    around = ~ndimage.binary_dilation(truth > 0, margin)
    inside = ndimage.binary_erosion(truth == 255, margin)
    assert alpha[around].max(initial=0) == 0
    assert alpha[inside].min(initial=255) == 255


def test_translucent_shapes_stay_translucent(converted: dict[tuple[str, str], str]) -> None:
    # face.svg: a shadow at 25 % opacity under the face, alone on the transparent background.
    alpha = rendered_rgba(converted["face", "slow"], (SIDE * SCALE, SIDE * SCALE))[..., 3]
    shadow = alpha[int(29.5 / 32 * 512), 256]
    assert 50 < shadow < 80, shadow


def test_flat_art_never_reaches_vtracer(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> str:
        raise AssertionError("flat art is drawn by the flat path, not traced by vtracer")

    monkeypatch.setattr(trace.vtracer, "convert_raw_image_to_svg", fail)
    for name in NAMES:
        vectorize(png(rasterize(name, SIDE)), "slow")


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_right_at_the_source_size_too(converted: dict[tuple[str, str], str], mode: str) -> None:
    for name in NAMES:
        source = rasterize(name, SIDE)
        score = compare(on_white(source), render_svg(converted[name, mode], *source.size))
        assert score.ssim > 0.95, (name, score)


@pytest.mark.parametrize("mode", ["fast", "slow"])
@pytest.mark.parametrize("name", ["chelsea.jpg", "grey16.png", "gradient.png", "exif_rotated.jpg"])
def test_photos_and_gradients_are_not_taken_for_flat_art(name: str, mode: str) -> None:
    from img2svg.engine.decode import decode_image
    from img2svg.engine.flat import flat_body
    from img2svg.engine.presets import get_preset

    path = Path(__file__).resolve().parents[2] / "manifests" / "images" / name
    rgba = np.asarray(decode_image(path.read_bytes()))
    assert flat_body(rgba, get_preset(mode).flat) is None
