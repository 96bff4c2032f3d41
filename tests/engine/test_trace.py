"""In-process vectorizing: valid SVG at the source size, fidelity, transparency, guards."""

from __future__ import annotations

import io
import xml.etree.ElementTree as StdET
from pathlib import Path

import defusedxml.ElementTree as SafeET
import numpy as np
import pytest
import resvg_py
from PIL import Image, ImageDraw

from img2svg.engine import trace
from img2svg.engine.errors import BadDimensions, ConversionFailed, OutputTooLarge
from img2svg.engine.fidelity import fidelity, render_svg
from img2svg.engine.trace import EngineLimits, vectorize

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "images"
SVG_NS = "{http://www.w3.org/2000/svg}"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def png(img: Image.Image) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


def parse(svg: str) -> StdET.Element:
    """defusedxml: the SVG is served to browsers, so it must be plain, safe XML."""
    root = SafeET.fromstring(svg.encode())
    assert root.tag == f"{SVG_NS}svg"
    return root


def rendered_alpha(svg: str, width: int, height: int) -> np.ndarray:
    png_bytes = resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height, dpi=96)
    with Image.open(io.BytesIO(bytes(png_bytes))) as img:
        return np.asarray(img.convert("RGBA"))[..., 3]


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_logo_is_valid_svg_at_its_size_and_faithful(mode: str) -> None:
    svg = vectorize(sample("logo.png"), mode)
    root = parse(svg)
    assert (root.get("width"), root.get("height")) == ("480", "320")
    assert root.get("viewBox") == "0 0 480 320"
    assert len(list(root.iter(f"{SVG_NS}path"))) >= 4  # flat art: a shape per colour
    assert fidelity(sample("logo.png"), svg).ssim > 0.99


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_gradient_does_not_collapse(mode: str) -> None:
    svg = vectorize(sample("gradient.png"), mode)
    score = fidelity(sample("gradient.png"), svg)
    assert score.psnr > 25, score
    assert svg.count("<path") > 16


def test_gradient_guard_rescues_a_collapsed_trace() -> None:
    # Without the guard, the slow settings trace this gradient as one flat path (~11 dB).
    image = Image.open(io.BytesIO(sample("gradient.png"))).convert("RGBA")
    preset = trace.get_preset("slow")
    unguarded = trace._trace(image.convert("RGB"), preset.vtracer_kwargs())
    assert unguarded.count("<path") < trace.GUARD_MAX_PATHS
    assert trace._colour_layer(image.convert("RGB"), preset, 0).count("<path") > 100


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="turbo"):
        vectorize(sample("logo.png"), "turbo")


def test_fully_transparent_image_gives_an_empty_svg_of_the_right_size() -> None:
    svg = vectorize(png(Image.new("RGBA", (70, 40), (255, 0, 0, 0))), "fast")
    root = parse(svg)
    assert (root.get("width"), root.get("height")) == ("70", "40")
    assert svg.count("<path") == 0
    assert rendered_alpha(svg, 70, 40).max() == 0


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_transparent_hole_stays_transparent(mode: str) -> None:
    # Opaque top and bottom rows: vtracer's own keying heuristic would not fire, and the
    # hole would be filled with whatever RGB its transparent pixels hold (black here).
    img = Image.new("RGBA", (200, 200), (200, 30, 30, 255))
    ImageDraw.Draw(img).rectangle((70, 70, 129, 129), fill=(0, 0, 0, 0))
    svg = vectorize(png(img), mode)
    parse(svg)
    alpha = rendered_alpha(svg, 200, 200)
    assert alpha[100, 100] == 0
    assert alpha[20, 20] == 255 and alpha[180, 180] == 255


@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_partial_transparency_survives(mode: str) -> None:
    svg = vectorize(sample("icon_alpha.png"), mode)  # flat art: the shadow is a translucent fill
    parse(svg)
    alpha = rendered_alpha(svg, 256, 256)
    assert 40 < alpha[225, 140] < 140  # the soft shadow (alpha 90 in the source)
    assert alpha[5, 5] == 0 and alpha[100, 60] == 255
    assert fidelity(sample("icon_alpha.png"), svg).ssim > 0.95


def test_partial_transparency_of_a_photo_survives_as_a_mask() -> None:
    photo = Image.open(io.BytesIO(sample("chelsea.jpg"))).convert("RGBA").resize((160, 120))
    ramp = np.tile(np.linspace(0, 255, 160).astype(np.uint8), (120, 1))
    photo.putalpha(Image.fromarray(ramp, "L"))
    svg = vectorize(png(photo), "fast")
    root = parse(svg)
    assert root.find(f"{SVG_NS}defs/{SVG_NS}mask") is not None
    alpha = rendered_alpha(svg, 160, 120)
    assert alpha[60, 2] < 40 and 90 < alpha[60, 80] < 170 and alpha[60, 157] > 190


def test_shrunk_trace_is_scaled_back_to_the_source_size() -> None:
    img = Image.new("RGB", (2400, 1200), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((200, 200, 1100, 1000), fill=(30, 60, 200))
    draw.ellipse((1300, 200, 2200, 1000), fill=(220, 160, 20))
    data = png(img)
    svg = vectorize(data, "fast")
    root = parse(svg)
    assert (root.get("width"), root.get("height")) == ("2400", "1200")
    assert root.get("viewBox") == "0 0 1024 512"
    assert render_svg(svg, 2400, 1200).shape == (1200, 2400, 3)
    assert fidelity(data, svg).ssim > 0.95


def test_exif_rotated_source_gives_an_upright_svg() -> None:
    root = parse(vectorize(sample("exif_rotated.jpg"), "fast"))
    assert (root.get("width"), root.get("height")) == ("240", "160")


def test_output_bound() -> None:
    with pytest.raises(OutputTooLarge, match="100 allowed"):
        vectorize(sample("logo.png"), "fast", EngineLimits(max_svg_bytes=100))


def test_bomb_never_reaches_vtracer(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_: object, **__: object) -> str:
        raise AssertionError("vtracer must not see this image")

    monkeypatch.setattr(trace.vtracer, "convert_raw_image_to_svg", fail)
    from tests.engine.test_decode import png_with_ihdr

    with pytest.raises(BadDimensions):
        vectorize(png_with_ihdr(60000, 60000), "slow")


class FakePanic(BaseException):
    """Stands in for pyo3_runtime.PanicException, which derives from BaseException."""


def test_vtracer_panic_becomes_conversion_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    def panic(*_: object, **__: object) -> str:
        raise FakePanic("called `Option::unwrap()` on a `None` value")

    monkeypatch.setattr(trace.vtracer, "convert_raw_image_to_svg", panic)
    with pytest.raises(ConversionFailed, match="FakePanic"):
        vectorize(sample("exif_rotated.jpg"), "fast")  # a photo: traced by vtracer


def test_keyboard_interrupt_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: object, **__: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(trace.vtracer, "convert_raw_image_to_svg", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vectorize(sample("exif_rotated.jpg"), "fast")  # a photo: traced by vtracer
