"""Bytes in, SVG text out, in the current process: decode, prepare, trace, guard, bound.

Flat art (logos, icons, emoji, flags: a few flat colours and their anti-aliasing) is drawn by
`engine.flat`, whose shapes have sub-pixel edges and curves so that the SVG stays right when
enlarged (issue #18). Everything else, photos and gradients, is traced by vtracer as below.

This is what a pool worker runs. It trusts nothing: the bytes are re-validated by `decode`
(vtracer aborts the whole process on oversized images), vtracer's panics are turned into
`ConversionFailed`, and the output is bounded because noise-like inputs produce 100+ MB SVGs.

vtracer knows nothing about partial transparency and only drops fully transparent pixels when
its own sampling heuristic finds enough of them in five scan lines. So transparency is handled
here: one transparent row is added above and below (which always satisfies that heuristic;
the viewBox hides the rows again), and partial alpha is traced as a separate grey layer used
as an SVG luminance mask over the colour layer, so soft shadows stay soft on any background.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np
import vtracer
from PIL import Image

from img2svg.engine.decode import DecodeLimits, decode
from img2svg.engine.errors import ConversionFailed, OutputTooLarge
from img2svg.engine.presets import GUARD_COLOURS, Preset, get_preset

# Fewer paths than this from a many-coloured source means vtracer merged everything into a
# few flat regions (a smooth gradient gives exactly one path).
GUARD_MAX_PATHS = 8
# The palette for `colours` is computed on a thumbnail: same scores, a tenth of the time.
_PALETTE_SAMPLE_SIDE = 128
_PAD = 1


@dataclass(frozen=True)
class EngineLimits:
    """Bounds on one conversion. `timeout_s` and `memory_bytes` are enforced by the pool."""

    decode: DecodeLimits = field(default_factory=DecodeLimits)
    max_svg_bytes: int = 20_000_000
    timeout_s: float = 120.0
    memory_bytes: int | None = 4 * 1024**3


def vectorize(data: bytes, mode: str, limits: EngineLimits = EngineLimits()) -> str:
    """Convert encoded image bytes to SVG text with the `mode` preset.

    Raises ValueError for an unknown mode (a caller bug), ImageRejected subclasses for bad
    input, ConversionFailed or OutputTooLarge when tracing fails or the result is too big.
    """
    preset = get_preset(mode)
    decoded = decode(data, _decode_limits(limits.decode, preset))
    svg = trace_image(decoded.image, preset, (decoded.width, decoded.height))
    size = len(svg.encode())
    if size > limits.max_svg_bytes:
        raise OutputTooLarge(
            f"the SVG would be {size} bytes, more than the {limits.max_svg_bytes} allowed; "
            "noise-like images do this, try mode 'fast'"
        )
    return svg


def trace_image(image: Image.Image, preset: Preset, size: tuple[int, int] | None = None) -> str:
    """Trace an RGBA image; the SVG is `size` (default: the image's) wide and high."""
    rgba = image.convert("RGBA") if image.mode != "RGBA" else image
    width, height = size or rgba.size
    alpha = np.asarray(rgba.getchannel("A"))
    if not alpha.any():
        return _document((width, height), rgba.size, 0, "")
    if preset.flat is not None:
        from img2svg.engine.flat import flat_body  # scipy and scikit-image: workers only

        body = flat_body(np.asarray(rgba), preset.flat)
        if body is not None:
            return _document((width, height), rgba.size, 0, body)
    pad = _PAD if (alpha == 0).any() else 0
    body = _colour_layer(_binary_alpha(rgba, alpha), preset, pad)
    if ((alpha > 0) & (alpha < 255)).any():
        body = _masked(body, _alpha_layer(alpha, preset, pad))
    return _document((width, height), rgba.size, pad, body)


def _decode_limits(limits: DecodeLimits, preset: Preset) -> DecodeLimits:
    """Shrink while decoding (JPEG draft) rather than after: less time and memory."""
    if preset.max_side is None or preset.max_side >= limits.max_side:
        return limits
    return DecodeLimits(max_pixels=limits.max_pixels, max_side=preset.max_side)


def _binary_alpha(rgba: Image.Image, alpha: np.ndarray) -> Image.Image:
    """Every visible pixel at full colour; partial alpha is restored by the mask layer."""
    if alpha.min() == 255:
        return rgba.convert("RGB")
    opaque = Image.fromarray(np.where(alpha > 0, 255, 0).astype(np.uint8), "L")
    colour = rgba.copy()
    colour.putalpha(opaque)
    return colour


def _colour_layer(image: Image.Image, preset: Preset, pad: int) -> str:
    """Trace with the preset, then fall back to a 256-colour palette if everything merged."""
    kwargs = preset.vtracer_kwargs()
    prepared = _palette_reduce(image, preset.colours) if preset.colours else image
    body = _trace(_pad(prepared, pad), kwargs)
    if _collapsed(body, image):
        retry = _trace(_pad(_palette_reduce(image, GUARD_COLOURS), pad), kwargs)
        if _count_paths(retry) > _count_paths(body):
            body = retry
    return body


def _collapsed(body: str, source: Image.Image) -> bool:
    """Few paths from a source with more colours than a palette holds: a lost gradient."""
    return _count_paths(body) < GUARD_MAX_PATHS and source.getcolors(GUARD_COLOURS) is None


def _count_paths(body: str) -> int:
    return body.count("<path")


def _alpha_layer(alpha: np.ndarray, preset: Preset, pad: int) -> str:
    """Opacity as grey (white = opaque), traced with the same preset as the colours."""
    grey = Image.fromarray(alpha, "L").convert("RGB")
    prepared = _palette_reduce(grey, preset.colours) if preset.colours else grey
    return _trace(_pad(prepared, pad, fill=(0, 0, 0)), preset.vtracer_kwargs())


def _masked(colour: str, mask: str) -> str:
    """Content-derived id: several SVGs inlined in one HTML page must not share a mask."""
    mask_id = "alpha-" + hashlib.sha256(mask.encode()).hexdigest()[:12]
    return (
        f'<defs><mask id="{mask_id}">\n{mask}\n</mask></defs>\n'
        f'<g mask="url(#{mask_id})">\n{colour}\n</g>'
    )


def _palette_reduce(image: Image.Image, colours: int) -> Image.Image:
    """Median-cut palette from a thumbnail, applied without dithering; alpha kept as is.

    Transparent pixels are filled with the mean visible colour first so that whatever
    colour they happen to hold cannot take palette entries from the visible ones.
    """
    rgb = image.convert("RGB")
    alpha = image.getchannel("A") if image.mode == "RGBA" else None
    if alpha is not None:
        rgb = _fill_transparent(rgb, np.asarray(alpha))
    sample = rgb.copy()
    sample.thumbnail((_PALETTE_SAMPLE_SIDE, _PALETTE_SAMPLE_SIDE), Image.Resampling.BOX)
    palette = sample.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    reduced = rgb.quantize(palette=palette, dither=Image.Dither.NONE).convert("RGB")
    if alpha is None:
        return reduced
    reduced.putalpha(alpha)
    return reduced


def _fill_transparent(rgb: Image.Image, alpha: np.ndarray) -> Image.Image:
    visible = alpha > 0
    if visible.all():
        return rgb
    pixels = np.array(rgb)
    pixels[~visible] = pixels[visible].mean(axis=0).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _pad(image: Image.Image, rows: int, fill: tuple[int, ...] = (0, 0, 0, 0)) -> Image.Image:
    """Add `rows` rows above and below, transparent unless `fill` says otherwise."""
    if rows == 0:
        return image
    mode = "RGBA" if len(fill) == 4 else "RGB"
    padded = Image.new(mode, (image.width, image.height + 2 * rows), fill)
    padded.paste(image.convert(mode), (0, rows))
    return padded


def _trace(image: Image.Image, kwargs: dict[str, object]) -> str:
    """Run vtracer on PNG bytes (never a path) and return the SVG's inner markup.

    pyo3 panics derive from BaseException, so `except Exception` would let them through.
    """
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    try:
        svg = vtracer.convert_raw_image_to_svg(buffer.getvalue(), img_format="png", **kwargs)
    except (KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        raise ConversionFailed("out of memory while tracing") from None
    except BaseException as exc:
        raise ConversionFailed(f"the vectorizer failed: {_describe(exc)}") from None
    return _inner(svg)


def _inner(svg: str) -> str:
    start = svg.find("<svg")
    open_end = svg.find(">", start)
    close = svg.rfind("</svg>")
    if start < 0 or open_end < 0 or close < open_end:
        raise ConversionFailed("the vectorizer returned no SVG document")
    return svg[open_end + 1 : close].strip()


def _document(size: tuple[int, int], traced: tuple[int, int], pad: int, body: str) -> str:
    """Display size from the source; viewBox in traced pixels, minus the padding rows.

    preserveAspectRatio="none": rounding while shrinking can change the aspect by under a
    pixel, and the SVG must still cover exactly the source's width and height.
    """
    width, height = size
    traced_width, traced_height = traced
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" '
        f'height="{height}" viewBox="0 {pad} {traced_width} {traced_height}" '
        'preserveAspectRatio="none">\n'
        f"{body}\n</svg>\n"
    )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
