"""How close an SVG comes to its source, measured the way a viewer would see both.

Both sides are composited on white at the source's displayed size: transparent areas then
compare as the white a browser would show, and an SVG traced from a shrunk copy is judged at
full size. resvg renders (pure wheel, no system libraries); `dpi=96` because its default
refuses physical units such as `pt`. scikit-image is imported lazily: it is slow to import and
only benchmarks and tests need scores.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import resvg_py
from PIL import Image, ImageOps

from img2svg.engine.decode import DecodeLimits, decode

_WHITE = (255, 255, 255, 255)
# Score sources at their own size: only the pixel bound applies, never the shrink.
_SOURCE_LIMITS = DecodeLimits(max_side=1 << 30)
_SSIM_WINDOW = 7  # scikit-image's default window


@dataclass(frozen=True)
class Fidelity:
    """SSIM in [-1, 1] (1 = identical), PSNR in dB (inf = identical)."""

    ssim: float
    psnr: float


def render_svg(svg: str, width: int, height: int) -> np.ndarray:
    """Render to an HxWx3 uint8 array on white, stretched to exactly width x height."""
    return _on_white(render_rgba(svg, width, height))


def render_rgba(svg: str, width: int, height: int) -> Image.Image:
    """Render to an RGBA image of exactly width x height, its transparency kept."""
    png = resvg_py.svg_to_bytes(svg_string=svg, width=width, height=height, dpi=96)
    with Image.open(io.BytesIO(bytes(png))) as rendered:
        rgba = rendered.convert("RGBA")
    if rgba.size != (width, height):
        rgba = rgba.resize((width, height), Image.Resampling.LANCZOS)
    return rgba


def fidelity(source: bytes | Image.Image, svg: str) -> Fidelity:
    """Score `svg` against `source` (encoded bytes, or an already opened Pillow image)."""
    reference = _source_pixels(source)
    height, width = reference.shape[:2]
    return compare(reference, render_svg(svg, width, height))


def compare(reference: np.ndarray, rendered: np.ndarray) -> Fidelity:
    """SSIM and PSNR of two HxWx3 uint8 images of the same size (both already on white)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    with np.errstate(divide="ignore"):  # identical pixels: PSNR is inf
        psnr = peak_signal_noise_ratio(reference, rendered, data_range=255)
    ssim = structural_similarity(
        _at_least(reference, _SSIM_WINDOW),
        _at_least(rendered, _SSIM_WINDOW),
        channel_axis=2,
        data_range=255,
        win_size=_SSIM_WINDOW,
    )
    return Fidelity(ssim=float(ssim), psnr=float(psnr))


def on_white(rgba: Image.Image) -> np.ndarray:
    """An RGBA image composited on white, as a browser shows it: HxWx3 uint8."""
    return _on_white(rgba)


def _source_pixels(source: bytes | Image.Image) -> np.ndarray:
    if isinstance(source, Image.Image):
        upright = ImageOps.exif_transpose(source) or source
        return _on_white(upright.convert("RGBA"))
    return _on_white(decode(source, _SOURCE_LIMITS).image)


def _on_white(rgba: Image.Image) -> np.ndarray:
    canvas = Image.new("RGBA", rgba.size, _WHITE)
    canvas.alpha_composite(rgba)
    return np.asarray(canvas.convert("RGB"))


def _at_least(pixels: np.ndarray, side: int) -> np.ndarray:
    """SSIM needs a full window; tiny images (icons, 1 px lines) are edge-padded to one."""
    height, width = pixels.shape[:2]
    if height >= side and width >= side:
        return pixels
    pad = ((0, max(0, side - height)), (0, max(0, side - width)), (0, 0))
    return np.pad(pixels, pad, mode="edge")
