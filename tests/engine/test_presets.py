"""Presets: settings inside the ranges vtracer survives, and fast's size/fidelity trade-off.

The trade-off is asserted as behaviour (bytes and SSIM against vtracer's defaults) on one small
photo, not as parameter values: `bench/fidelity.py` is where the numbers are tuned.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import vtracer

from img2svg.engine.decode import decode_image
from img2svg.engine.fidelity import fidelity
from img2svg.engine.presets import PRESETS, get_preset
from img2svg.engine.trace import vectorize

# rocket at 240 px, JPEG: the smallest photo among the samples (~25 ms per trace).
PHOTO = Path(__file__).resolve().parents[2] / "manifests" / "images" / "exif_rotated.jpg"

FAST_BYTES_GOAL = 0.10  # issue #11: at most 10 % of vtracer's default bytes on photos
FAST_SSIM_MARGIN = 0.03  # ... with SSIM at most 0.03 below the defaults'


def vtracer_defaults(data: bytes) -> str:
    """As in bench/fidelity.py: our decoding, then vtracer with only colour mode set."""
    buffer = io.BytesIO()
    decode_image(data).save(buffer, "PNG", compress_level=1)
    return vtracer.convert_raw_image_to_svg(buffer.getvalue(), img_format="png", colormode="color")


@pytest.fixture(scope="module")
def defaults() -> tuple[int, float]:
    data = PHOTO.read_bytes()
    svg = vtracer_defaults(data)
    return len(svg.encode()), fidelity(data, svg).ssim


def test_fast_is_a_tenth_of_the_defaults_bytes_on_a_photo_at_similar_ssim(
    defaults: tuple[int, float],
) -> None:
    data = PHOTO.read_bytes()
    svg = vectorize(data, "fast")
    default_bytes, default_ssim = defaults
    ratio = len(svg.encode()) / default_bytes
    ssim = fidelity(data, svg).ssim
    assert ratio <= FAST_BYTES_GOAL, f"fast is {ratio:.1%} of the defaults' bytes"
    assert ssim >= default_ssim - FAST_SSIM_MARGIN, (ssim, default_ssim)


def test_slow_beats_the_defaults_on_a_photo(defaults: tuple[int, float]) -> None:
    data = PHOTO.read_bytes()
    assert fidelity(data, vectorize(data, "slow")).ssim > defaults[1]


@pytest.mark.parametrize("mode", sorted(PRESETS))
def test_settings_stay_in_the_ranges_vtracer_survives(mode: str) -> None:
    # From the vectorizer notes: these values panic, hang or are silently ignored.
    preset = get_preset(mode)
    kwargs = preset.vtracer_kwargs()
    assert kwargs["colormode"] in {"color", "binary"}  # "bw" is silently ignored
    assert kwargs["mode"] in {"polygon", "spline"}  # "none" copies the pixel staircase
    assert kwargs["hierarchical"] in {"stacked", "cutout"}
    assert kwargs["filter_speckle"] >= 1  # 0: tens of thousands of paths
    assert 1 <= kwargs["color_precision"] <= 8  # <= 0 panics, 9 gives one path
    assert kwargs.get("max_iterations", 1) >= 1  # 0 panics
    assert kwargs.get("length_threshold", 1) > 0  # 0: huge output
    assert isinstance(kwargs.get("path_precision"), int)  # unset: 2.2-2.4x the bytes
    assert preset.max_side is not None and preset.max_side <= 2048  # time and memory bound
    assert preset.colours is None or 2 <= preset.colours <= 256


def test_kwargs_are_a_copy() -> None:
    get_preset("fast").vtracer_kwargs()["layer_difference"] = 0
    assert get_preset("fast").vtracer_kwargs()["layer_difference"] != 0


def test_unknown_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="turbo"):
        get_preset("turbo")
