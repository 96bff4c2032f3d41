"""Decoding untrusted bytes: every sample format, and every way bytes can be refused."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw

from img2svg.engine.decode import DecodeLimits, decode, decode_image, probe_image
from img2svg.engine.errors import BadDimensions, NotAnImage, TruncatedImage

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "images"

# name -> (displayed width, height, format)
EXPECTED = {
    "logo.png": (480, 320, "PNG"),
    "gradient.png": (256, 256, "PNG"),
    "icon_alpha.png": (256, 256, "PNG"),
    "palette.gif": (200, 150, "GIF"),
    "astronaut.jpg": (512, 512, "JPEG"),
    "chelsea.jpg": (451, 300, "JPEG"),
    "coffee.jpg": (600, 400, "JPEG"),
    "cmyk.jpg": (300, 200, "JPEG"),
    "grey16.png": (256, 256, "PNG"),
    "exif_rotated.jpg": (240, 160, "JPEG"),
}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def png_with_ihdr(width: int, height: int) -> bytes:
    """A PNG whose IHDR (valid CRC) declares any size, followed by a tiny IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def encode(img: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def flat_picture(size: tuple[int, int] = (120, 80)) -> Image.Image:
    img = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((10, 10, size[0] // 2, size[1] - 10), fill=(200, 30, 30))
    draw.ellipse((size[0] // 2, 10, size[0] - 10, size[1] - 10), fill=(30, 60, 200))
    return img


def test_samples_exist() -> None:
    assert sorted(p.name for p in SAMPLES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_sample_probes_and_decodes(name: str) -> None:
    width, height, fmt = EXPECTED[name]
    assert probe_image(sample(name)) == (width, height, fmt)
    img = decode_image(sample(name))
    assert img.mode == "RGBA"
    assert img.size == (width, height)


@pytest.mark.parametrize(
    ("fmt", "params"),
    [("WEBP", {"lossless": True}), ("BMP", {}), ("TIFF", {}), ("PPM", {}), ("ICO", {})],
)
def test_other_formats_decode(fmt: str, params: dict) -> None:
    data = encode(flat_picture((64, 48)), fmt, **params)
    assert probe_image(data)[2] == fmt
    img = decode_image(data)
    assert img.mode == "RGBA"
    assert img.getpixel((20, 24))[:3] == (200, 30, 30)


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = np.asarray(decode_image(sample("grey16.png")))[..., 0]
    camera = np.asarray(
        Image.fromarray(skimage.data.camera()).resize((256, 256), Image.Resampling.LANCZOS)
    )
    # Clipping 16-bit values to 8 bits turns almost everything white.
    assert np.abs(grey.astype(int) - camera.astype(int)).mean() < 2


def test_cmyk_comes_out_in_the_right_colours() -> None:
    rgb = np.asarray(decode_image(sample("cmyk.jpg")).convert("RGB")).astype(int)
    coffee = Image.fromarray(skimage.data.coffee())
    coffee.thumbnail((300, 300), Image.Resampling.LANCZOS)
    assert np.abs(rgb - np.asarray(coffee).astype(int)).mean() < 12


def test_animation_gives_its_first_frame() -> None:
    img = decode_image(sample("palette.gif"))
    assert img.getpixel((40, 60)) == (220, 30, 30, 255)  # red in frame 1, white in frame 2


def test_exif_orientation_is_applied() -> None:
    img = decode_image(sample("exif_rotated.jpg")).convert("RGB")
    upright = Image.fromarray(skimage.data.rocket())
    upright.thumbnail((240, 240), Image.Resampling.LANCZOS)
    assert img.size == upright.size
    diff = np.abs(np.asarray(img).astype(int) - np.asarray(upright).astype(int)).mean()
    assert diff < 10  # a wrong rotation (even 180°) would be far off


def test_alpha_is_kept() -> None:
    alpha = np.asarray(decode_image(sample("icon_alpha.png")))[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255
    assert ((alpha > 0) & (alpha < 255)).any()


def test_longest_side_is_bounded_keeping_aspect() -> None:
    decoded = decode(sample("coffee.jpg"), DecodeLimits(max_side=300))
    assert decoded.image.size == (300, 200)
    assert (decoded.width, decoded.height) == (600, 400)


def test_big_jpeg_is_drafted_then_shrunk() -> None:
    data = encode(flat_picture((2400, 1200)), "JPEG", quality=90)
    decoded = decode(data, DecodeLimits(max_side=256))
    assert decoded.image.size == (256, 128)
    assert (decoded.width, decoded.height) == (2400, 1200)
    assert decoded.image.getpixel((40, 64))[:3] == pytest.approx((200, 30, 30), abs=12)


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.4 hello" * 20, b"<html>hello</html>", b"\x00" * 64, b"GIF89a"],
    ids=["pdf", "html", "zeros", "gif-signature-only"],
)
def test_non_images_are_not_images(data: bytes) -> None:
    with pytest.raises(NotAnImage):
        probe_image(data)
    with pytest.raises(NotAnImage):
        decode_image(data)


def test_empty_bytes_are_not_an_image() -> None:
    with pytest.raises(NotAnImage, match="empty"):
        probe_image(b"")


def test_formats_that_run_external_programs_are_refused() -> None:
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    with pytest.raises(NotAnImage):
        probe_image(eps)


@pytest.mark.parametrize("name", ["logo.png", "astronaut.jpg", "grey16.png"])
def test_truncated_files_are_detected(name: str) -> None:
    data = sample(name)
    with pytest.raises(TruncatedImage):
        probe_image(data[: len(data) // 2])
    with pytest.raises(TruncatedImage):
        decode_image(data[: len(data) // 2])


def test_jpeg_cut_inside_its_header_is_truncated() -> None:
    data = encode(Image.new("RGB", (200, 200), (10, 200, 30)), "JPEG")
    with pytest.raises(TruncatedImage):
        probe_image(data[:300])


@pytest.mark.parametrize("size", [(0, 0), (0, 50), (50, 0)])
def test_zero_sized_header_is_bad_dimensions(size: tuple[int, int]) -> None:
    # Pillow itself reports zero-sized images as "cannot identify"; decode reads the IHDR to
    # give the real reason. BadDimensions, not NotAnImage, is the documented answer.
    with pytest.raises(BadDimensions, match=f"{size[0]}x{size[1]}"):
        probe_image(png_with_ihdr(*size))


def test_huge_declared_size_is_refused_from_the_header() -> None:
    started = time.perf_counter()
    with pytest.raises(BadDimensions, match="60000x60000"):
        probe_image(png_with_ihdr(60000, 60000))
    assert time.perf_counter() - started < 0.5


def test_our_bound_holds_without_pillows_global_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    started = time.perf_counter()
    with pytest.raises(BadDimensions, match="60000x60000"):
        decode_image(png_with_ihdr(60000, 60000))
    assert time.perf_counter() - started < 0.5


def test_pixel_bound_is_the_callers_not_pillows() -> None:
    pillow_bound = Image.MAX_IMAGE_PIXELS
    with pytest.raises(BadDimensions, match="480x320"):
        probe_image(sample("logo.png"), DecodeLimits(max_pixels=480 * 320 - 1))
    assert probe_image(sample("logo.png"), DecodeLimits(max_pixels=480 * 320))[:2] == (480, 320)
    assert pillow_bound == Image.MAX_IMAGE_PIXELS  # never changed behind other callers' backs
