"""Turn untrusted bytes into a bounded RGBA picture, or refuse them with a precise reason.

Everything here runs before vtracer sees a single pixel, because vtracer cannot defend itself:
a PNG that declares 60000x60000 makes it allocate ~14 GB and abort the whole process. Pillow
reads the declared size from the header without decoding, so the size bound costs nothing.

Pillow's own bomb guard (`Image.MAX_IMAGE_PIXELS`) is a process-wide global. We never change it
(other code in the process may rely on it) and never depend on it: our bound is
`DecodeLimits.max_pixels`, checked explicitly. If the global is left at its default (~89 M
pixels, error above ~179 M) it only fires for images our default bound already refuses; when it
does fire we report it as `BadDimensions` too (its warning is only caught if the warnings
filter turns it into an error: `warnings.catch_warnings` is not thread-safe, and probing runs in
threads). Likewise `ImageFile.LOAD_TRUNCATED_IMAGES` must
stay False in this process, or truncated files load silently.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from img2svg.engine.errors import BadDimensions, NotAnImage, TruncatedImage

# Formats with a real signature and a decoder that needs no external program. Excluded on
# purpose: EPS (runs Ghostscript), TGA and other signature-less formats (random bytes could be
# "identified"), and exotic scientific formats nobody vectorizes.
ALLOWED_FORMATS: tuple[str, ...] = (
    "PNG",
    "JPEG",  # also yields multi-picture (MPO) files, which have no opener of their own
    "GIF",
    "WEBP",
    "BMP",
    "DIB",
    "TIFF",
    "ICO",
    "PPM",
    "AVIF",
    "QOI",
)

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIDEWAYS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds applied to every image before it is decoded or traced."""

    max_pixels: int = 40_000_000
    max_side: int = 4096


@dataclass(frozen=True)
class Decoded:
    """A decoded picture plus the size the SVG must keep, since `image` may have been shrunk."""

    image: Image.Image
    width: int
    height: int
    format: str


def probe_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> tuple[int, int, str]:
    """Fully decode once to prove the bytes are a whole image; return (width, height, format).

    The size is as displayed (EXIF orientation applied), the size the SVG will have. Decoding
    every pixel is the only way to catch truncation, which Pillow otherwise discovers lazily.
    """
    with _open(data, limits) as im:
        orientation = _orientation(im)
        _load(im)
        width, height = _displayed_size(im.size, orientation)
        return width, height, str(im.format)


def decode_image(data: bytes, limits: DecodeLimits = DecodeLimits()) -> Image.Image:
    """Validated decode to RGBA, first frame only, upright, longest side ≤ `limits.max_side`."""
    return decode(data, limits).image


def decode(data: bytes, limits: DecodeLimits = DecodeLimits()) -> Decoded:
    """Like `decode_image`, but also report the displayed size before any shrinking."""
    with _open(data, limits) as im:
        orientation = _orientation(im)
        width, height = _displayed_size(im.size, orientation)
        fmt = str(im.format)
        _draft(im, limits.max_side)
        _load(im)
        rgba = _shrink(_to_rgba(im), limits.max_side)
    if orientation in _TRANSPOSE:
        rgba = rgba.transpose(_TRANSPOSE[orientation])
    return Decoded(rgba, width, height, fmt)


def _open(data: bytes, limits: DecodeLimits) -> Image.Image:
    """Read only the header; refuse unknown formats and sizes before any pixel is allocated."""
    if not data:
        raise NotAnImage("the image is empty")
    try:
        im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(data, limits) from None
    except UnidentifiedImageError:
        raise _unidentified(data) from None
    except Exception as exc:  # the signature matched but the header does not parse
        raise TruncatedImage(f"the image header is corrupt ({_describe(exc)})") from None
    try:
        _check_size(im.size, limits)
    except BaseException:
        im.close()
        raise
    return im


def _too_large(data: bytes, limits: DecodeLimits) -> BadDimensions:
    """Pillow's own guard fired first; say what was declared when the header tells us."""
    declared = _declared_png_size(data) or _declared_jpeg_size(data)
    if declared is None:
        return BadDimensions(f"the image has more than the {limits.max_pixels} pixels allowed")
    width, height = declared
    if width * height <= limits.max_pixels:  # someone lowered Image.MAX_IMAGE_PIXELS
        return BadDimensions(f"the image is {width}x{height} pixels, more than Pillow allows")
    return _pixel_bound(width, height, limits)


def _pixel_bound(width: int, height: int, limits: DecodeLimits) -> BadDimensions:
    return BadDimensions(
        f"the image is {width}x{height} = {width * height} pixels, "
        f"more than the {limits.max_pixels} allowed"
    )


def _check_size(size: tuple[int, int], limits: DecodeLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise BadDimensions(f"the image is {width}x{height} pixels")
    if width * height > limits.max_pixels:
        raise _pixel_bound(width, height, limits)


def _unidentified(data: bytes) -> BadDimensions | NotAnImage:
    """Pillow refuses zero-sized images as "unidentified"; tell the user the real reason."""
    declared = _declared_png_size(data) or _declared_jpeg_size(data)
    if declared is not None and 0 in declared:
        return BadDimensions(f"the image header declares {declared[0]}x{declared[1]} pixels")
    return NotAnImage("the data is not an image in a supported format")


def _declared_png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _declared_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Walk JPEG markers up to the first start-of-frame, which holds height then width."""
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return None


def _orientation(im: Image.Image) -> int:
    """EXIF orientation, 1 when absent; a broken EXIF block must not sink a good image."""
    try:
        return int(im.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:
        return 1


def _displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    width, height = size
    return (height, width) if orientation in _SIDEWAYS else (width, height)


def _draft(im: Image.Image, max_side: int) -> None:
    """Let libjpeg decode big JPEGs at 1/2, 1/4 or 1/8 scale: much less time and memory.

    The draft stays at least `max_side` on the longest side so the final LANCZOS shrink still
    does the real filtering. All of the stream is still read, so truncation is still caught.
    """
    if im.format not in ("JPEG", "MPO") or max(im.size) <= 2 * max_side:
        return
    ratio = max_side / max(im.size)
    target = (max(1, int(im.size[0] * ratio + 1)), max(1, int(im.size[1] * ratio + 1)))
    im.draft(None, target)


def _load(im: Image.Image) -> None:
    """Decode the pixels; any failure at this stage means damaged or missing pixel data."""
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadDimensions(f"a frame is too large to decode safely ({exc})") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise TruncatedImage(f"the image data is truncated or corrupt ({_describe(exc)})") from None


def _to_rgba(im: Image.Image) -> Image.Image:
    """One pixel format for the tracer; deep and exotic modes are scaled, not clipped."""
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_to_8bit(np.asarray(im)), "L").convert("RGBA")
    if im.mode == "RGBA":
        return im.copy()
    try:
        return im.convert("RGBA")
    except ValueError:  # e.g. LAB, HSV: Pillow goes to RGB first
        try:
            return im.convert("RGB").convert("RGBA")
        except ValueError:
            raise NotAnImage(f"unsupported pixel format {im.mode}") from None


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """16-bit and 32-bit grey to 0..255. Pillow's own conversion clips instead of scaling."""
    is_float = values.dtype.kind == "f"
    values = values.astype(np.float64)
    top = float(values.max(initial=0.0))
    if top <= 1.0 and is_float:
        scale = 255.0
    elif top <= 255.0:
        scale = 1.0
    else:
        scale = 255.0 / 65535.0
    return np.clip(values * scale, 0, 255).round().astype(np.uint8)


def _shrink(im: Image.Image, max_side: int) -> Image.Image:
    if max(im.size) <= max_side:
        return im
    ratio = max_side / max(im.size)
    size = (max(1, round(im.size[0] * ratio)), max(1, round(im.size[1] * ratio)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
