"""Flat art (logos, icons, emoji, flags) as filled shapes whose edges sit where the source's
anti-aliasing says they are, so that the SVG stays right when it is drawn larger.

1. Palette: the colours of "pure" pixels (whose 3x3 neighbourhood is one colour), most common
   first, near-duplicates merged. Premultiplied RGBA, so transparency is a colour like any
   other (index 0) and semi-transparent fills keep their alpha.
2. Unmixing: every other pixel is explained as a mix of two palette colours found near it,
   `t * a + (1 - t) * b`. An anti-aliased edge pixel is then coverage, not a colour of its own:
   no halo layers, no staircase. Pixels no pair explains get colours of their own; unless
   nearly every pixel is then explained exactly, the image is not flat art (a photo, a
   gradient) and `None` is returned: the caller traces it as before.
3. Shapes: layers are stacked, the largest (holes filled) first. A layer's field is its own
   coverage plus, within 1.5 px of it or inside it, the coverage of the opaque layers drawn
   later: each shape slips under its neighbours drawn above it, so no background shows through
   the seams, and holes that later layers fill are not cut out. The bottom layer slips under
   all of them, so the opaque silhouette has no pinholes. The 0.5 iso-line of the field,
   found by marching squares after a remapping that makes straight edges land exactly (see
   `_edge_field`), is the shape's sub-pixel outline.
4. Curves: `curves.fit_contour` (corners kept, Béziers elsewhere), written on a grid of
   `1/grid` px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import find_contours

from img2svg.engine.curves import Outline, fit_contour, path_data
from img2svg.engine.presets import FlatSettings

# A pixel whose 3x3 neighbourhood varies by at most this much (0-255, each channel) is a
# sample of a palette colour.
_PURE_SPREAD = 3.0
# A pixel within this distance (0-255 premultiplied RGBA) of one palette colour is that colour.
_EXACT = 2.0
# The palette explains a pixel when a mix of two of its colours comes this close.
_EXPLAINED = 12.0
# How far (px) a layer reaches under the opaque layers drawn above it.
_UNDERLAP = 1.5
# Palette colours are looked for near a pixel within this radius (px).
_NEAR = 2
# Coverage above which a layer counts as present at a pixel, for its underlap.
_PRESENT = 0.2
_CHUNK = 1 << 16
# Images narrower than this (px) are left to vtracer.
_MIN_SIDE = 4
# The first test of flatness looks at this many pixels at most, in bands of _BAND rows.
_PRECHECK_PIXELS = 1 << 17
_BAND = 16


@dataclass(frozen=True)
class Mixture:
    """Each pixel as `t * palette[a] + (1 - t) * palette[b]`; `residual` is the misfit."""

    palette: np.ndarray  # K x 4, premultiplied RGBA 0-255; index 0 is transparent
    a: np.ndarray  # H x W int
    b: np.ndarray
    t: np.ndarray  # H x W float, weight of a
    residual: np.ndarray  # H x W float, 0-255 units

    def labels(self) -> np.ndarray:
        return np.where(self.t >= 0.5, self.a, self.b)

    def coverage(self, members: np.ndarray) -> np.ndarray:
        """Summed weight of the palette indices marked in the boolean `members` (length K)."""
        return self.t * members[self.a] + (1 - self.t) * members[self.b]


def flat_body(rgba: np.ndarray, settings: FlatSettings) -> str | None:
    """SVG markup for an H x W x 4 uint8 image, or None if it is not flat art."""
    if min(rgba.shape[:2]) < _MIN_SIDE:
        return None  # a few pixels: nothing to enlarge, vtracer copies them exactly
    mixture = unmix(rgba, settings)
    if mixture is None:
        return None
    layers = []
    for index, outlines in _shapes(mixture, settings):
        data = path_data(outlines, settings.grid)
        if data:
            layers.append(f'<path{_paint(mixture.palette[index])} d="{data}"/>')
    if not layers:
        return ""
    scale = _decimal(1 / settings.grid)
    return f'<g transform="scale({scale})">\n' + "\n".join(layers) + "\n</g>"


def unmix(rgba: np.ndarray, settings: FlatSettings) -> Mixture | None:
    """Find the palette and explain every pixel with it, or None for a photo or gradient."""
    pixels = _premultiplied(rgba)
    visible = rgba[..., 3] > 0
    if not visible.any():
        return None
    minimum = max(3, int(settings.min_share * rgba.shape[0] * rgba.shape[1]))
    transparent = np.zeros((1, 4), np.float32)
    banded, banded_visible = _bands(pixels, visible)
    banded_minimum = max(3, minimum * len(banded) // len(pixels))
    palette = _palette(banded[_pure(banded)], transparent, settings, banded_minimum)
    if not _looks_flat(banded, palette, banded_visible, settings):
        return None  # a photo: spare it the unmixing, which would take seconds
    if len(banded) < len(pixels):
        palette = _palette(pixels[_pure(pixels)], transparent, settings, minimum)
    mixture = _mix(pixels, palette)
    for _ in range(2):  # thin lines have no pure pixels: their colours come from the misfits
        # Opaque colours only: translucent misfits are seams where two shapes' anti-aliasing
        # let the background through, and would come back as translucent slivers.
        unexplained = (mixture.residual > _EXPLAINED) & (rgba[..., 3] == 255)
        grown = _palette(pixels[unexplained], palette, settings, minimum)
        if len(grown) == len(palette):
            break
        palette = grown
        mixture = _mix(pixels, palette)
    explained = float((mixture.residual[visible] <= _EXACT).mean())
    return mixture if explained >= settings.min_explained else None


# --- palette -------------------------------------------------------------------------------


def _premultiplied(rgba: np.ndarray) -> np.ndarray:
    pixels = rgba.astype(np.float32)
    pixels[..., :3] *= pixels[..., 3:4] / 255.0
    return pixels


def _pure(pixels: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is one colour (within _PURE_SPREAD per channel)."""
    rounded = np.rint(pixels).astype(np.uint8)
    high = ndimage.maximum_filter(rounded, size=(3, 3, 1), mode="nearest")
    low = ndimage.minimum_filter(rounded, size=(3, 3, 1), mode="nearest")
    return (high - low).max(axis=2) <= _PURE_SPREAD


def _bands(pixels: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A large image as evenly spaced bands of rows, _PRECHECK_PIXELS in all, each followed
    by two blank rows so that no band's 2 px dilation reaches into the next."""
    height, width = visible.shape
    if height * width <= _PRECHECK_PIXELS or height <= _BAND:
        return pixels, visible
    bands = max(1, _PRECHECK_PIXELS // (_BAND * width))
    starts = np.linspace(0, height - _BAND, bands).astype(int)
    rows = np.minimum((starts[:, None] + np.arange(_BAND + 2)[None]).ravel(), height - 1)
    blank = np.tile(np.arange(_BAND + 2) >= _BAND, bands)
    sample = pixels[rows].copy()
    sample[blank] = 0.0
    return sample, visible[rows] & ~blank[:, None]


def _looks_flat(
    pixels: np.ndarray, palette: np.ndarray, visible: np.ndarray, settings: FlatSettings
) -> bool:
    """Cheap first test: in flat art nearly every pixel is a palette colour or within 2 px of
    one (anti-aliasing is thin); in photos at most a third are (icons 0.94-1, photos <= 0.35).
    """
    _, distance = _nearest(pixels.reshape(-1, 4), palette)
    exact = (distance <= _EXACT**2).reshape(visible.shape) & visible
    near = ndimage.binary_dilation(exact, iterations=2)
    return float(near[visible].mean()) >= settings.min_explained


def _palette(
    samples: np.ndarray, palette: np.ndarray, settings: FlatSettings, minimum: int
) -> np.ndarray:
    """`palette` plus the most common sample colours that are not near one already in it."""
    if not len(samples):
        return palette
    keys, counts = np.unique(np.rint(samples).astype(np.int64) @ _PACK, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    colours = [c for c in palette]
    limit = settings.max_colours + 1
    merge = settings.merge_distance**2
    # Merged counts: a colour whose samples are spread over near-duplicates still counts.
    unpacked = _unpack(keys[order]).astype(np.float32)
    counts = counts[order]
    if len(unpacked) > 4096:  # a photo: keep the bound on work
        unpacked, counts = unpacked[:4096], counts[:4096]
    taken = np.zeros(len(unpacked), dtype=bool)
    for i in range(len(unpacked)):
        if taken[i] or len(colours) >= limit:
            continue
        near = ((unpacked - unpacked[i]) ** 2).sum(axis=1) <= merge
        support = counts[near & ~taken].sum()
        taken |= near
        if support < minimum:
            continue
        if min(((c - unpacked[i]) ** 2).sum() for c in colours) <= merge:
            continue
        colours.append(unpacked[i])
    return np.array(colours, dtype=np.float32)


_PACK = np.array([1 << 24, 1 << 16, 1 << 8, 1], dtype=np.int64)


def _unpack(keys: np.ndarray) -> np.ndarray:
    return np.stack([(keys >> s) & 255 for s in (24, 16, 8, 0)], axis=1)


# --- unmixing ------------------------------------------------------------------------------


def _mix(pixels: np.ndarray, palette: np.ndarray) -> Mixture:
    height, width, _ = pixels.shape
    flat = pixels.reshape(-1, 4)
    count = len(palette)
    nearest, distance = _nearest(flat, palette)
    a, b = nearest.copy(), nearest.copy()
    t = np.ones(len(flat), dtype=np.float32)
    best = distance.copy()
    mixed = np.flatnonzero(distance > _EXACT**2)
    if len(mixed) and count > 1:
        exact = np.where(distance <= _EXACT**2, nearest, -1)
        allowed = _near_colours(exact, mixed, width, count)
        _pairs(flat, palette, mixed, allowed, a, b, t, best)
        left = mixed[best[mixed] > _EXPLAINED**2]  # nothing near explains it: try every pair
        if len(left):
            _pairs(flat, palette, left, np.ones((len(left), count), bool), a, b, t, best)
    return Mixture(
        palette,
        a.reshape(height, width),
        b.reshape(height, width),
        t.reshape(height, width),
        np.sqrt(best).reshape(height, width),
    )


def _nearest(flat: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest palette colour and the squared distance to it, per pixel."""
    nearest = np.empty(len(flat), dtype=np.int64)
    distance = np.empty(len(flat), dtype=np.float32)
    squares = (palette**2).sum(axis=1)
    for start in range(0, len(flat), _CHUNK):
        block = flat[start : start + _CHUNK]
        # einsum, not a matrix product: BLAS threads cost more than they save at this shape
        # (4 channels) and compete with the other worker processes for the cores.
        cross = np.einsum("nc,kc->nk", block, palette)
        d2 = (block**2).sum(axis=1)[:, None] - 2 * cross + squares[None]
        nearest[start : start + _CHUNK] = d2.argmin(axis=1)
        distance[start : start + _CHUNK] = np.maximum(d2.min(axis=1), 0)
    return nearest, distance


def _near_colours(exact: np.ndarray, where: np.ndarray, width: int, count: int) -> np.ndarray:
    """For pixels `where` (flat indices), which palette colours occur exactly within _NEAR px
    (`exact`: each pixel's colour index, -1 where it is no palette colour)."""
    height = len(exact) // width
    labels = np.pad(exact.reshape(height, width), _NEAR, constant_values=-1)
    rows, cols = np.divmod(where, width)
    allowed = np.zeros((len(where), count), dtype=bool)
    index = np.arange(len(where))
    for dy in range(2 * _NEAR + 1):
        for dx in range(2 * _NEAR + 1):
            found = labels[rows + dy, cols + dx]
            hit = found >= 0
            allowed[index[hit], found[hit]] = True
    return allowed


def _pairs(
    flat: np.ndarray,
    palette: np.ndarray,
    where: np.ndarray,
    allowed: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    t: np.ndarray,
    best: np.ndarray,
) -> None:
    """Improve the fit of pixels `where` with mixes of two allowed colours (in place)."""
    count = len(palette)
    for i in range(count):
        has_i = allowed[:, i]
        if not has_i.any():
            continue
        for j in range(i + 1, count):
            rows = np.flatnonzero(has_i & allowed[:, j])
            if not len(rows):
                continue
            index = where[rows]
            x = flat[index] - palette[j]
            direction = palette[i] - palette[j]
            weight = np.clip(x @ direction / max(float(direction @ direction), 1e-9), 0, 1)
            misfit = ((x - weight[:, None] * direction) ** 2).sum(axis=1)
            better = misfit < best[index]
            index = index[better]
            best[index] = misfit[better]
            a[index], b[index], t[index] = i, j, weight[better]


# --- shapes --------------------------------------------------------------------------------


def _shapes(mixture: Mixture, settings: FlatSettings) -> list[tuple[int, list[Outline]]]:
    """(palette index, outlines) per drawn layer, bottom first."""
    labels = mixture.labels()
    count = len(mixture.palette)
    filled_area = {}
    for k in range(1, count):
        region = labels == k
        if region.any():
            filled_area[k] = int(ndimage.binary_fill_holes(region).sum())
    order = sorted(filled_area, key=lambda k: -filled_area[k])
    opaque = mixture.palette[:, 3] >= 254.5
    drawn = []
    reach = int(np.ceil(_UNDERLAP)) + 2
    for rank, k in enumerate(order):
        later = np.zeros(count, dtype=bool)
        later[[j for j in order[rank + 1 :] if opaque[j]]] = True
        region = labels == k
        if rank == 0:  # the bottom layer backs every opaque layer: no pinhole shows through
            region = region | (mixture.coverage(later) > 0)
        rows, cols = np.nonzero(region)
        y0, x0 = max(rows.min() - reach, 0), max(cols.min() - reach, 0)
        y1 = min(rows.max() + reach + 1, labels.shape[0])
        x1 = min(cols.max() + reach + 1, labels.shape[1])
        window = (slice(y0, y1), slice(x0, x1))
        own = mixture.coverage(np.arange(count) == k)[window]
        field = own
        if later.any():
            # Measured from wherever the layer has some coverage, not only where it has the
            # most: a pixel shared with a layer above must not leave a gap between the two.
            inside = ndimage.binary_fill_holes(region[window] | (own > _PRESENT))
            distance = ndimage.distance_transform_edt(~inside)
            under = np.clip(_UNDERLAP + 0.5 - distance, 0, 1) if rank else 1.0
            field = own + mixture.coverage(later)[window] * under
        outlines = _outlines(field, (x0, y0), settings)
        if outlines:
            drawn.append((k, outlines))
    return drawn


def _outlines(field: np.ndarray, origin: tuple[int, int], settings: FlatSettings) -> list[Outline]:
    padded = np.pad(_edge_field(field), 1)
    outlines = []
    for contour in find_contours(padded, 0.5, positive_orientation="high"):
        if len(contour) < 4:
            continue
        points = contour[:-1, ::-1] + (origin[0] - 0.5, origin[1] - 0.5)
        if abs(_area(points)) < settings.speckle:
            continue
        outline = fit_contour(points, settings.tolerance, settings.corner_degrees)
        if outline is not None:
            outlines.append(outline)
    return outlines


def _edge_field(coverage: np.ndarray) -> np.ndarray:
    """Remap coverage so that marching squares' linear interpolation between pixel centres
    puts a straight edge exactly where the coverage of its pixels says it is.

    Pixel n (centre n + 0.5) covered `c` by a shape whose edge is at n + 1 - c: with the
    neighbours at 0 and 1, the 0.5 crossing lands on the edge when c maps to c / (0.5 + c)
    below one half and 0.5 / (1.5 - c) above (plain coverage is off by up to 0.09 px).
    """
    c = np.clip(coverage, 0.0, 1.0)
    return np.where(c < 0.5, c / (0.5 + c), 0.5 / (1.5 - c))


def _area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# --- writing -------------------------------------------------------------------------------


def _paint(colour: np.ndarray) -> str:
    alpha = float(colour[3])
    rgb = np.clip(np.rint(colour[:3] * 255.0 / max(alpha, 1e-6)), 0, 255).astype(int)
    text = "".join(f"{v:02x}" for v in rgb)
    if all(text[i] == text[i + 1] for i in (0, 2, 4)):
        text = text[0] + text[2] + text[4]
    paint = f' fill="#{text}"'
    if alpha < 254.5:
        paint += f' fill-opacity="{_decimal(alpha / 255.0, 3)}"'
    return paint


def _decimal(value: float, digits: int = 6) -> str:
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return text[1:] if text.startswith("0.") else text
