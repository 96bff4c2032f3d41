"""Pictures made on the fly for the quality tests: a photo-like image, a flat colour, SVGs."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.helpers import logo_png

__all__ = ["blank_svg", "encode", "flat_png", "flat_svg", "logo_png", "photo_jpeg"]


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def photo_jpeg(width: int = 160, height: int = 120, seed: int = 0) -> bytes:
    """Smooth colour gradients with ripples and grain: what a photo looks like to SSIM."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    red = 128 + 100 * np.sin(x / 9.0 + seed)
    green = 255 * x / width
    blue = 128 + 100 * np.cos(y / 7.0) * np.sin(x / 23.0)
    pixels = np.stack([red, green, blue], axis=-1) + rng.normal(0, 6, (height, width, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return encode(image, "JPEG", quality=85)


def flat_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    return encode(Image.new("RGB", (width, height), rgb))


def flat_svg(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    fill = "rgb({},{},{})".format(*rgb)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f'<rect width="{width}" height="{height}" fill="{fill}"/></svg>'
    ).encode()


def blank_svg(width: int, height: int) -> bytes:
    """What a collapsed trace looks like: a document that draws nothing."""
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"/>'.encode()
