"""How good one SVG is: fidelity to its source, drawn elements, sizes, and two thumbnails.

The fidelity recipe is the engine's (`img2svg.engine.fidelity`): the SVG is rendered with its
`render_svg` at the source's displayed size, both sides are composited on white (`on_white`),
and SSIM/PSNR come from its `compare`. The pixels are made here rather than by `fidelity()`
because a report also needs the rendering (for the thumbnail and the blank check; rendering
twice would double the cost). `tests/quality/test_score.py` checks that both give identical
numbers on the sample images.

Every input is untrusted. The SVG is parsed with defusedxml (no entity expansion, no external
DTD) before resvg sees it, and refused if it links to anything but a local `#id` or a `data:`
URI: resvg reads `<image href="/any/file.png">` from disk, which would put a local file into a
report. The source goes through `engine.decode` and its pixel bound; the SVG has a byte bound.
Peak memory is about 135 bytes per source pixel (measured: 16 Mpx peaked at 2.2 GB), most of it
scikit-image's float64 SSIM planes: the worker's memory cap (`Scorer`) is what bounds it.
"""

from __future__ import annotations

import base64
import io
import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from PIL import Image, ImageStat

from img2svg.engine.decode import DecodeLimits, decode
from img2svg.engine.errors import EngineError
from img2svg.engine.fidelity import compare, on_white, render_svg
from img2svg.quality.errors import ScoreRefused

# The engine's own bounds: a source the engine would refuse to decode is not scored either,
# and no SVG larger than the engine may produce (`EngineLimits.max_svg_bytes`; not imported, to
# keep vtracer out of scoring workers; a test checks they agree).
DEFAULT_MAX_PIXELS = DecodeLimits().max_pixels
DEFAULT_MAX_SVG_BYTES = 20_000_000

THUMB_SIDE = 96
ZOOM = 4  # the enlargement a vector must survive (issue 18's measure)
ZOOM_CROP = 24  # source px: 96 px at 4x, beside the thumbnails
_IMAGES = ("source_thumb", "svg_thumb", "source_zoom", "svg_zoom")
THUMB_MIME = "image/webp"
# WebP at quality 70: 0.3-2.6 KB per thumbnail on manifests/images, so a report of 10,000
# rows carries tens of MB of pictures, not hundreds.
_THUMB_QUALITY = 70

# Elements that put pixels on the canvas. Containers (g, defs, mask, symbol) draw nothing.
DRAWN_ELEMENTS = frozenset(
    {"path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "use", "image", "text"}
)
_SVG_NS = "http://www.w3.org/2000/svg"
_HREFS = ("href", "{http://www.w3.org/1999/xlink}href")

QUALITY_JSON_VERSION = 1


@dataclass(frozen=True)
class Quality:
    """One SVG's scores against its source.

    `ssim` is in [-1, 1] (1 = identical), `psnr` in dB (`math.inf` = identical pixels).
    `paths` counts drawn elements, wherever they sit (masks and defs included).
    `source_luma_std` / `svg_luma_std` are the standard deviations of the luminance (0-255)
    of the two composited images: how far each is from a single flat colour.
    The thumbnails are `THUMB_MIME` images at most `THUMB_SIDE` px on their longest side.
    """

    ssim: float
    psnr: float
    paths: int
    svg_bytes: int
    source_bytes: int
    width: int
    height: int
    source_luma_std: float
    svg_luma_std: float
    source_thumb: bytes
    svg_thumb: bytes
    # The same small region, enlarged ZOOM times: the source as a browser enlarges a raster
    # (bicubic), and the SVG drawn at that size, so facets and halos show without opening files.
    source_zoom: bytes = b""
    svg_zoom: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: thumbnails as base64, an infinite `psnr` as None (null).

        JSON has no infinity, and PSNR is only infinite for identical pixels, so null can mean
        nothing else here (a row that was not scored has no Quality at all). `v` is the
        format's version, for readers of stored scores.
        """
        data = asdict(self)
        data["psnr"] = None if math.isinf(self.psnr) else self.psnr
        for name in _IMAGES:
            data[name] = base64.b64encode(data[name]).decode("ascii")
        return {"v": QUALITY_JSON_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quality:
        """The inverse of `to_dict`."""
        version = data.get("v")
        if version != QUALITY_JSON_VERSION:
            raise ValueError(f"unknown Quality format version {version!r}")
        fields = {key: value for key, value in data.items() if key != "v"}
        psnr = fields["psnr"]
        fields["psnr"] = math.inf if psnr is None else float(psnr)
        for name in _IMAGES:
            fields[name] = base64.b64decode(fields.get(name, ""))
        return cls(**fields)

    def to_json(self) -> str:
        """`to_dict` as JSON text (strict: no NaN or Infinity literals)."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Quality:
        return cls.from_dict(json.loads(text))


def score(
    source: bytes,
    svg: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_svg_bytes: int = DEFAULT_MAX_SVG_BYTES,
) -> Quality:
    """Score `svg` against the encoded image `source`, in this process.

    Raises ScoreRefused when the source has more than `max_pixels` pixels or cannot be decoded,
    or the SVG is over `max_svg_bytes`, malformed, or links outside itself. Run it through
    `Scorer` for time and memory bounds and crash containment.
    """
    if len(svg) > max_svg_bytes:
        raise ScoreRefused(f"the SVG is {len(svg)} bytes, more than the {max_svg_bytes} scored")
    text, paths = _read_svg(svg)
    reference = _source_pixels(source, max_pixels)
    height, width = reference.shape[:2]
    try:
        rendered = render_svg(text, width, height)
    except ValueError as exc:
        raise ScoreRefused(f"the SVG could not be rendered: {exc}") from exc
    ssim, psnr = _compare(reference, rendered)
    source_image = Image.fromarray(reference)
    svg_image = Image.fromarray(rendered)
    source_zoom, svg_zoom = zoomed(reference, text)
    return Quality(
        ssim=ssim,
        psnr=psnr,
        paths=paths,
        svg_bytes=len(svg),
        source_bytes=len(source),
        width=width,
        height=height,
        source_luma_std=_luma_std(source_image),
        svg_luma_std=_luma_std(svg_image),
        source_thumb=thumbnail(source_image),
        svg_thumb=thumbnail(svg_image),
        source_zoom=source_zoom,
        svg_zoom=svg_zoom,
    )


def zoomed(reference: np.ndarray, svg: str) -> tuple[bytes, bytes]:
    """The source's busiest ZOOM_CROP px square (the most edge), enlarged ZOOM times: bicubic
    for the source, and the SVG drawn at that scale (a vector, so its edges are its own)."""
    height, width = reference.shape[:2]
    side = min(ZOOM_CROP, width, height)
    x, y = _busiest(reference, side)
    region = Image.fromarray(reference[y : y + side, x : x + side])
    source = region.resize((side * ZOOM, side * ZOOM), Image.Resampling.BICUBIC)
    embedded = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    window = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side * ZOOM}" height="{side * ZOOM}" '
        f'viewBox="{x} {y} {side} {side}"><image width="{width}" height="{height}" '
        f'preserveAspectRatio="none" href="data:image/svg+xml;base64,{embedded}"/></svg>'
    )
    try:
        drawn = Image.fromarray(render_svg(window, side * ZOOM, side * ZOOM))
    except ValueError:
        return _webp(source), b""
    return _webp(source), _webp(drawn)


def _busiest(reference: np.ndarray, side: int) -> tuple[int, int]:
    """The top-left corner of the `side` px square holding the most luminance edge."""
    luma = reference.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    edges = np.zeros_like(luma)
    edges[:, 1:] += np.abs(np.diff(luma, axis=1))
    edges[1:, :] += np.abs(np.diff(luma, axis=0))
    table = np.pad(edges.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    y, x = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return int(x), int(y)


def count_drawn(root: Any) -> int:
    """Drawn elements under (and including) a parsed SVG root: SVG namespace or none."""
    return sum(1 for element in root.iter() if _is_svg(element.tag, DRAWN_ELEMENTS))


def thumbnail(image: Image.Image) -> bytes:
    """A WebP of an RGB image fitting `THUMB_SIDE` px: a downscale, never a second render."""
    width, height = image.size
    ratio = min(1.0, THUMB_SIDE / max(width, height))
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    small = image
    if size != image.size:
        small = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    return _webp(small)


def _webp(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "WEBP", quality=_THUMB_QUALITY)
    return buffer.getvalue()


def _read_svg(svg: bytes) -> tuple[str, int]:
    """Parse safely, check it is an SVG that reads nothing from outside, count what it draws."""
    try:
        root = fromstring(svg)
    except DefusedXmlException as exc:
        raise ScoreRefused(f"the SVG uses forbidden XML features ({exc})") from exc
    except ParseError as exc:
        raise ScoreRefused(f"the SVG is not well-formed XML ({exc})") from exc
    if not _is_svg(root.tag, {"svg"}):
        raise ScoreRefused(f"the document's root is <{root.tag}>, not <svg>")
    for element in root.iter():
        for name in _HREFS:
            link = (element.get(name) or "").strip()
            if link and not link.startswith(("#", "data:")):
                shown = link if len(link) <= 80 else link[:77] + "..."
                raise ScoreRefused(f"the SVG links to an outside resource ({shown})")
    try:
        text = svg.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScoreRefused("the SVG is not UTF-8") from exc
    return text, count_drawn(root)


def _source_pixels(source: bytes, max_pixels: int) -> np.ndarray:
    """The source upright at its full displayed size, on white: only the pixel bound applies."""
    try:
        decoded = decode(source, DecodeLimits(max_pixels=max_pixels, max_side=1 << 30))
    except EngineError as exc:
        raise ScoreRefused(f"the source image was refused: {exc.reason}") from exc
    return on_white(decoded.image)


def _compare(reference: np.ndarray, rendered: np.ndarray) -> tuple[float, float]:
    found = compare(reference, rendered)
    return found.ssim, found.psnr


def _luma_std(image: Image.Image) -> float:
    """Pillow's "L" is ITU-R 601 luma in one byte per pixel: cheap even at 40 Mpx."""
    return float(ImageStat.Stat(image.convert("L")).stddev[0])


def _is_svg(tag: object, names: frozenset[str] | set[str]) -> bool:
    """An element named one of `names`, in the SVG namespace or none (comments are not str)."""
    if not isinstance(tag, str):
        return False
    namespace, _, name = tag[1:].rpartition("}") if tag.startswith("{") else ("", "", tag)
    return name in names and namespace in ("", _SVG_NS)
