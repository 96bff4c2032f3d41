"""Closed sub-pixel contours to compact SVG path data: corners kept, smooth runs as Béziers.

A contour comes from marching squares on a coverage field, so it has one vertex per pixel edge
it crosses and a little zig-zag. It is cut at its corners (where it turns sharply over a short
distance), each corner is moved to where the straight sides on either side of it meet (marching
squares cuts every corner off by half a pixel), and each run between corners is fitted with
straight lines where it is straight and cubic Béziers elsewhere (Schneider's least-squares
fit, "An Algorithm for Automatically Fitting Digitized Curves", Graphics Gems, 1990).

Path data is written on an integer grid of `1/grid` pixel, in relative commands, with no
separator a minus sign makes unnecessary: the digits a renderer can use at the size the SVG is
meant to be seen at, and no more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Arc length (px) over which the turning angle at a vertex is measured.
_CORNER_REACH = 1.5
# Points this close (arc length, px) to a corner that has been moved are dropped.
_CHAMFER = 0.8
# A moved corner may go at most this far (px) from the contour.
_CORNER_SHIFT = 1.2
_REPARAMETERIZE = 4
# A contour narrower than this (px) either way is written as its polygon.
_TINY = 3.5


@dataclass(frozen=True)
class Segment:
    """A line (`controls` None) or a cubic Bézier from the previous end point to `end`."""

    end: np.ndarray
    controls: tuple[np.ndarray, np.ndarray] | None = None


@dataclass(frozen=True)
class Outline:
    start: np.ndarray
    segments: list[Segment]


def fit_contour(points: np.ndarray, tolerance: float, corner_degrees: float) -> Outline | None:
    """Fit a closed contour (N x 2, x/y, first point not repeated at the end)."""
    points = _dedupe(points)
    if len(points) < 3:
        return None
    if (points.max(axis=0) - points.min(axis=0)).min() < _TINY:
        # Too small for corners to be told from curves: marching squares' polygon as it is.
        corners = points[_turning(points)]
        return Outline(corners[0], [Segment(p) for p in corners[1:]] + [Segment(corners[0])])
    arc = _arc(points)
    corners = _corners(points, arc, np.radians(corner_degrees))
    if not corners:
        return _fit_smooth_loop(points, tolerance)
    points, corners = _sharpen(points, arc, corners)
    segments: list[Segment] = []
    count = len(points)
    for k, first in enumerate(corners):
        last = corners[(k + 1) % len(corners)]
        index = np.arange(first, last + (count if last <= first else 0) + 1) % count
        run = points[index]
        segments += _fit_run(run, _tangent(run, 0), _tangent(run[::-1], 0), tolerance)
    return Outline(points[corners[0]], segments)


def path_data(outlines: list[Outline], grid: int) -> str:
    """Relative path data on a grid of 1/grid px (the caller scales the path by 1/grid)."""
    parts: list[str] = []
    here = np.zeros(2, dtype=np.int64)
    for outline in outlines:
        start = _snap(outline.start, grid)
        command = None
        body = []
        segments = outline.segments
        if segments and segments[-1].controls is None:
            segments = segments[:-1]  # "z" draws the closing line
        for segment in segments:
            end = _snap(segment.end, grid)
            if segment.controls is None:
                delta = end - start
                if not delta.any():
                    continue
                if delta[1] == 0:
                    letter, numbers = "h", [delta[0]]
                elif delta[0] == 0:
                    letter, numbers = "v", [delta[1]]
                else:
                    letter, numbers = "l", list(delta)
            else:
                c1, c2 = (_snap(c, grid) for c in segment.controls)
                letter, numbers = "c", [*(c1 - start), *(c2 - start), *(end - start)]
            body.append(_numbers(numbers, letter if letter != command else ""))
            command = letter
            start = end
        if not body:
            continue
        origin = _snap(outline.start, grid)
        move = origin - here
        parts.append(_numbers(list(move), "m") + "".join(body) + "z")
        here = origin  # after z the current point is the subpath's start
    return "".join(parts)


# --- corners -------------------------------------------------------------------------------


def _dedupe(points: np.ndarray) -> np.ndarray:
    step = np.diff(points, axis=0, append=points[:1])
    keep = np.hypot(step[:, 0], step[:, 1]) > 1e-6
    return points[keep]


def _turning(points: np.ndarray) -> np.ndarray:
    """Which points of a closed polygon are not on the straight line through their neighbours."""
    before = points - np.roll(points, 1, axis=0)
    after = np.roll(points, -1, axis=0) - points
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    keep = np.abs(cross) > 1e-9
    return keep if keep.sum() >= 3 else np.ones(len(points), dtype=bool)


def _arc(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length at each point, starting at 0."""
    step = np.hypot(*np.diff(points, axis=0).T)
    return np.concatenate([[0.0], np.cumsum(step)])


def _corners(points: np.ndarray, arc: np.ndarray, threshold: float) -> list[int]:
    """Indices where the contour turns more than `threshold` within ±_CORNER_REACH px."""
    count = len(points)
    total = arc[-1] + np.hypot(*(points[0] - points[-1]))
    if total < 4 * _CORNER_REACH:
        return []
    tiled = np.concatenate([arc - total, arc, arc + total])
    back = np.searchsorted(tiled, arc - _CORNER_REACH, side="right") - 1
    ahead = np.searchsorted(tiled, arc + _CORNER_REACH, side="left")
    previous = points[back % count]
    following = points[ahead % count]
    v1 = points - previous
    v2 = following - points
    norms = np.hypot(*v1.T) * np.hypot(*v2.T)
    cosine = np.einsum("ij,ij->i", v1, v2) / np.maximum(norms, 1e-12)
    turn = np.arccos(np.clip(cosine, -1.0, 1.0))
    candidates = np.flatnonzero(turn > threshold)
    corners = []
    for i in candidates:
        lo, hi = back[i] - count, ahead[i] - count  # the window, in unwrapped indices
        window = np.arange(lo, hi + 1) % count
        best = window[np.argmax(turn[window])]
        if best == i:
            corners.append(int(i))
    return corners


def _sharpen(
    points: np.ndarray, arc: np.ndarray, corners: list[int]
) -> tuple[np.ndarray, list[int]]:
    """Move each corner to where its straight sides meet; drop the chamfer points around it."""
    count = len(points)
    total = arc[-1] + np.hypot(*(points[0] - points[-1]))
    moved = points.copy()
    drop = np.zeros(count, dtype=bool)
    for i in corners:
        offset = (arc - arc[i] + total / 2) % total - total / 2  # signed arc distance to i
        before = points[(offset < -_CHAMFER * 0.9) & (offset > -3.0)]
        after = points[(offset > _CHAMFER * 0.9) & (offset < 3.0)]
        meet = _meeting_point(before, after)
        if meet is None or np.hypot(*(meet - points[i])) > _CORNER_SHIFT:
            continue
        moved[i] = meet
        drop |= (np.abs(offset) < _CHAMFER) & (np.arange(count) != i)
    corner_set = set(corners)
    keep = np.flatnonzero(~drop)
    remap = {int(old): new for new, old in enumerate(keep)}
    return moved[keep], [remap[c] for c in corners if c in remap and c in corner_set]


def _meeting_point(before: np.ndarray, after: np.ndarray) -> np.ndarray | None:
    """Intersection of the lines through two point sets, if both are straight enough."""
    if len(before) < 2 or len(after) < 2:
        return None
    lines = []
    for side in (before, after):
        centre = side.mean(axis=0)
        _, _, vt = np.linalg.svd(side - centre)
        direction = vt[0]
        spread = np.abs((side - centre) @ vt[1]).max()
        if spread > 0.3:
            return None
        lines.append((centre, direction))
    (p, r), (q, s) = lines
    cross = r[0] * s[1] - r[1] * s[0]
    if abs(cross) < 0.2:  # nearly parallel: no real corner to sharpen
        return None
    t = ((q - p)[0] * s[1] - (q - p)[1] * s[0]) / cross
    return p + t * r


# --- fitting -------------------------------------------------------------------------------


def _tangent(run: np.ndarray, at: int) -> np.ndarray:
    """Unit direction from run[at] into the run, measured over about 1.5 px."""
    origin = run[at]
    distances = np.hypot(*(run - origin).T)
    far = np.flatnonzero(distances >= 1.5)
    target = run[far[0]] if len(far) else run[-1 if at == 0 else 0]
    return _unit(target - origin)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.hypot(*v)
    return v / norm if norm > 1e-12 else np.array([1.0, 0.0])


def _fit_smooth_loop(points: np.ndarray, tolerance: float) -> Outline:
    """A contour without corners, as four runs joined smoothly (one cubic never fits a whole
    loop, so fitting it whole would only spend a failed attempt before splitting)."""
    count = len(points)
    cuts = sorted({int(k) for k in np.linspace(0, count, 5)[:-1]})
    segments: list[Segment] = []
    for k, first in enumerate(cuts):
        last = cuts[(k + 1) % len(cuts)]
        index = np.arange(first, last + (count if last <= first else 0) + 1) % count
        run = points[index]
        left = _smooth_tangent(points, first)
        right = -_smooth_tangent(points, last % count)
        segments += _fit_run(run, left, right, tolerance)
    return Outline(points[cuts[0]], segments)


def _smooth_tangent(points: np.ndarray, at: int) -> np.ndarray:
    """Direction of travel at points[at] of a closed contour, from the points around it."""
    forward = np.roll(points, -at, axis=0)  # starts at points[at]
    backward = np.roll(forward[::-1], 1, axis=0)  # starts there too, going the other way
    return _unit(_tangent(forward, 0) - _tangent(backward, 0))


def _fit_run(
    run: np.ndarray, left: np.ndarray, right: np.ndarray, tolerance: float
) -> list[Segment]:
    """Lines or cubics through `run` (its ends fixed) within `tolerance` px."""
    if len(run) <= 2 or _straight(run, tolerance):
        return [Segment(run[-1])]
    return _fit_cubic(run, left, right, tolerance * tolerance)


def _straight(run: np.ndarray, tolerance: float) -> bool:
    chord = run[-1] - run[0]
    length = np.hypot(*chord)
    if length < 1e-9:
        return False
    normal = np.array([-chord[1], chord[0]]) / length
    along = (run - run[0]) @ (chord / length)
    inside = (along >= -tolerance).all() and (along <= length + tolerance).all()
    return bool(inside and np.abs((run - run[0]) @ normal).max() <= tolerance)


def _fit_cubic(
    points: np.ndarray, left: np.ndarray, right: np.ndarray, error: float
) -> list[Segment]:
    if len(points) == 2:
        third = np.hypot(*(points[1] - points[0])) / 3
        return [Segment(points[1], (points[0] + left * third, points[1] + right * third))]
    u = _chord_parameters(points)
    bezier = _generate(points, u, left, right)
    worst, split = _max_error(points, bezier, u)
    arc = _arc(points)[-1]
    if worst < error and _tame(bezier, arc):
        return [_segment(bezier)]
    if worst < error * 4:
        for _ in range(_REPARAMETERIZE):
            u = _reparameterize(bezier, points, u)
            bezier = _generate(points, u, left, right)
            worst, split = _max_error(points, bezier, u)
            if worst < error and _tame(bezier, arc):
                return [_segment(bezier)]
    centre = _unit(points[split - 1] - points[split + 1])
    first = _fit_run(points[: split + 1], left, centre, np.sqrt(error))
    return first + _fit_run(points[split:], -centre, right, np.sqrt(error))


def _tame(bezier: np.ndarray, arc: float) -> bool:
    """False for a curve that is close to the points only where they are sampled: a control
    polygon much longer than the run means a loop or a spike between the samples."""
    return float(np.hypot(*np.diff(bezier, axis=0).T).sum()) <= 1.5 * arc + 0.5


def _segment(bezier: np.ndarray) -> Segment:
    return Segment(bezier[3], (bezier[1], bezier[2]))


def _chord_parameters(points: np.ndarray) -> np.ndarray:
    arc = _arc(points)
    return arc / arc[-1] if arc[-1] > 0 else np.linspace(0, 1, len(points))


def _basis(u: np.ndarray) -> np.ndarray:
    v = 1 - u
    return np.stack([v**3, 3 * u * v**2, 3 * u**2 * v, u**3], axis=1)


def _generate(points: np.ndarray, u: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Least-squares control-point distances along fixed end tangents."""
    first, last = points[0], points[-1]
    b = _basis(u)
    a1 = b[:, 1:2] * left
    a2 = b[:, 2:3] * right
    c00, c01, c11 = (a1 * a1).sum(), (a1 * a2).sum(), (a2 * a2).sum()
    rest = points - np.outer(b[:, 0] + b[:, 1], first) - np.outer(b[:, 2] + b[:, 3], last)
    x0, x1 = (a1 * rest).sum(), (a2 * rest).sum()
    det = c00 * c11 - c01 * c01
    length = np.hypot(*(last - first))
    alpha_l = alpha_r = 0.0
    if abs(det) > 1e-12:
        alpha_l = (x0 * c11 - x1 * c01) / det
        alpha_r = (c00 * x1 - c01 * x0) / det
    if min(alpha_l, alpha_r) < 1e-6 * length or max(alpha_l, alpha_r) > 2 * length:
        alpha_l = alpha_r = length / 3
    return np.array([first, first + left * alpha_l, last + right * alpha_r, last])


def _evaluate(bezier: np.ndarray, u: np.ndarray) -> np.ndarray:
    return _basis(u) @ bezier


def _max_error(points: np.ndarray, bezier: np.ndarray, u: np.ndarray) -> tuple[float, int]:
    distance = ((_evaluate(bezier, u) - points) ** 2).sum(axis=1)
    inner = distance[1:-1]
    split = int(np.argmax(inner)) + 1
    return float(inner[split - 1]), split


def _reparameterize(bezier: np.ndarray, points: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One Newton-Raphson step per point towards its nearest point on the curve."""
    d1 = 3 * (bezier[1:] - bezier[:-1])
    d2 = 2 * (d1[1:] - d1[:-1])
    v = 1 - u
    q = _evaluate(bezier, u)
    q1 = np.outer(v * v, d1[0]) + np.outer(2 * u * v, d1[1]) + np.outer(u * u, d1[2])
    q2 = np.outer(v, d2[0]) + np.outer(u, d2[1])
    diff = q - points
    numerator = (diff * q1).sum(axis=1)
    denominator = (q1 * q1).sum(axis=1) + (diff * q2).sum(axis=1)
    step = np.divide(
        numerator, denominator, out=np.zeros_like(u), where=np.abs(denominator) > 1e-12
    )
    return np.clip(u - step, 0.0, 1.0)


# --- writing -------------------------------------------------------------------------------


def _snap(point: np.ndarray, grid: int) -> np.ndarray:
    return np.rint(np.asarray(point) * grid).astype(np.int64)


def _numbers(values: list, letter: str) -> str:
    """`letter` then integers, separated only where a minus sign does not separate them."""
    out = [letter]
    for k, value in enumerate(values):
        text = str(int(value))
        if (k or not letter) and not text.startswith("-"):
            out.append(" ")
        out.append(text)
    return "".join(out)
