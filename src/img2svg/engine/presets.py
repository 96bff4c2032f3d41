"""The two conversion modes a caller may ask for, as measured settings rather than guesses.

Tuned with `bench/fidelity.py` on `manifests/images`, starting from the team's measured
vectorizer notes. What the numbers taught:

* `polygon` mode: never worse than spline on SSIM and smaller.
* `path_precision` is always set: unset, vtracer writes full float coordinates (2.2-2.4x bytes).
* fast pre-quantizes to 64 colours with a median-cut palette computed on a thumbnail. Median
  cut keeps smooth gradients from collapsing (fast octree's palette made gradient.png stop at
  24.8 dB); computing the palette on a 128 px thumbnail costs ~10 ms instead of ~100 ms with
  the same scores.
* fast's goal (issue #11): on photos at most 10 % of vtracer's default bytes, mean SSIM no more
  than 0.03 below the defaults'. On 10 photos (the JPEG samples and scikit-image's bundled
  ones) `layer_difference=27` gives 7.3-9.4 % of the bytes (mean 7.6 %) at mean SSIM -0.025;
  the old 16 gave 10.5-22.7 % (mean 11.9 %) at -0.004. Costs vary: chelsea and coffee stay
  above defaults' SSIM, immunohistochemistry (-0.089) and hubble_deep_field (-0.076, stars
  under `filter_speckle`) lose most.
* `color_precision` drives run time; `filter_speckle` and `layer_difference` drive size, and
  `layer_difference` buys the most bytes per SSIM point (filter_speckle 8-12, 24-32 colours or
  color_precision 5 cost more SSIM for the same bytes; max_side 768 only shrinks the photos
  above 768 px; color_precision 4 and `cutout` lose 0.07-0.17 SSIM). In polygon mode
  `corner_threshold`, `length_threshold`, `max_iterations` and `splice_threshold` change
  nothing, nor does path_precision 0 vs 1.
* slow is bounded to 2048 px: larger inputs took minutes and produced SVGs over the output
  bound, for no visible gain at normal viewing sizes.

`flat` is how each mode draws flat art (`engine.flat`; issue #18, measured with
`bench/vectors.py`: 128 px icons judged at 4x). slow keeps up to 32 colours, merges only
near-identical ones, fits curves within 0.2 px and writes 1/16 px; fast keeps 16 colours, merges
closer ones, drops shapes under 2 px², fits within 0.45 px and writes 1/8 px, which keeps icons
under 5 KB. Both tell flat art from photos the same way (`min_explained`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["fast", "slow"]

# The gradient guard re-traces with this many colours (notes: 256 turned 11 dB into 33 dB).
GUARD_COLOURS = 256


@dataclass(frozen=True)
class FlatSettings:
    """How one mode draws flat art.

    `max_colours` bounds the palette (transparency not counted); colours closer than
    `merge_distance` (0-255 premultiplied RGBA) are one; a colour needs `min_share` of the
    pixels (and at least 3) as samples. Flat art has at least `min_explained` of its visible
    pixels exactly one palette colour or a mix of two (icons 0.86-1, a flag with a glow 0.74;
    colour photos at most 0.43: noise and shading leave too many pixels apart; a grey photo up
    to 0.68, as any grey is a mix of two palette greys). Shapes smaller than
    `speckle` px² are dropped; curves stay within `tolerance` px of the outline; corners turn
    more than `corner_degrees`; coordinates are written in 1/`grid` px.
    """

    max_colours: int
    merge_distance: float
    min_share: float
    min_explained: float
    speckle: float
    tolerance: float
    grid: int
    corner_degrees: float = 60.0


@dataclass(frozen=True)
class Preset:
    """How one mode prepares pixels and drives vtracer.

    `max_side` shrinks before tracing (time and bytes grow with pixel count); `colours`
    reduces to a palette first, or None to trace the pixels as decoded; `vtracer` holds
    keyword arguments for `vtracer.convert_raw_image_to_svg`, colour mode and stacking
    included so that no vtracer default is relied upon. `flat` draws flat art instead of
    tracing it (`engine.flat`), or None to trace every image.
    """

    name: str
    max_side: int | None
    colours: int | None
    vtracer: dict[str, object] = field(default_factory=dict)
    flat: FlatSettings | None = None

    def vtracer_kwargs(self) -> dict[str, object]:
        """A copy, so a caller's tweak can never leak into the shared preset."""
        return dict(self.vtracer)


_COMMON: dict[str, object] = {
    "colormode": "color",  # "bw" is silently accepted and means nothing; the word is "binary"
    "hierarchical": "stacked",
    "mode": "polygon",
    "corner_threshold": 60,
}

PRESETS: dict[str, Preset] = {
    "fast": Preset(
        name="fast",
        max_side=1024,
        colours=64,
        vtracer={
            **_COMMON,
            "filter_speckle": 6,
            "color_precision": 6,
            "layer_difference": 27,  # 16: 11-23 % of defaults' bytes on photos; 27: <= 9.4 %
            "path_precision": 1,
        },
        flat=FlatSettings(
            max_colours=16,
            merge_distance=24,
            min_share=0.0002,
            min_explained=0.7,
            speckle=2.0,
            tolerance=0.45,
            grid=8,
        ),
    ),
    "slow": Preset(
        name="slow",
        max_side=2048,
        colours=None,
        vtracer={
            **_COMMON,
            "filter_speckle": 2,
            "color_precision": 8,
            "layer_difference": 8,
            "length_threshold": 3.5,
            "max_iterations": 10,
            "splice_threshold": 45,
            "path_precision": 2,
        },
        flat=FlatSettings(
            max_colours=32,
            merge_distance=12,
            min_share=0.0002,
            min_explained=0.7,
            speckle=0.5,
            tolerance=0.2,
            grid=16,
        ),
    ),
}


def get_preset(mode: str) -> Preset:
    """The preset for `mode`; anything else is the caller's bug, hence ValueError."""
    try:
        return PRESETS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"unknown mode {mode!r}: expected one of {sorted(PRESETS)}") from None
