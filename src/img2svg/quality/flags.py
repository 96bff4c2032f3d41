"""Names for what is wrong with a converted row, decided from its `Quality` alone.

Thresholds were measured with vtracer on `manifests/images` (10 images: photos, a 16-bit grey
scan, a CMYK JPEG, a gradient, a logo, an icon with alpha, a palette GIF), scored with
`score()`. Flags never change a row's status: they say where a person should look first.
"""

from __future__ import annotations

from img2svg.quality.score import Quality

LOW_FIDELITY = "low_fidelity"
NEAR_BLANK = "near_blank"
OVERSIZED = "oversized"
ALL_FLAGS: tuple[str, ...] = (LOW_FIDELITY, NEAR_BLANK, OVERSIZED)

LOW_FIDELITY_SSIM = 0.5
"""SSIM below this is a collapse, not a rough trace.

Normal traces measured 0.726-0.994 in fast mode (worst: cmyk.jpg 0.726, coffee.jpg 0.745) and
0.810-0.994 in slow mode. Collapses measured well below 0.5 on the photos: one flat rectangle
of the mean colour 0.001-0.112, a blank (white) SVG 0.21-0.40, a two-colour trace 0.44-0.54,
noise traced in fast mode 0.03-0.09. 0.5 leaves a margin of 0.22 under the worst normal trace.
A blank SVG over a mostly white source can still score above 0.5 (gradient.png 0.68, the icon
0.72): `NEAR_BLANK` catches those.
"""

NEAR_BLANK_MAX_STD = 2.0
"""The rendered SVG is "one colour" when its luminance std-dev (0-255) is below this.

A flat fill renders at 0.0; one black dot on a white 480x320 canvas measures 1.06 at a radius
of 1 px and 3.2 at 3 px, so below 2 nothing a viewer would notice is drawn. Every normal trace
of the samples measured 25.9 or more.
"""

NEAR_BLANK_SOURCE_MIN_STD = 8.0
"""...and the source is not: its std-dev is at least this.

A source that really is one colour (std-dev near 0) is rightly traced as one colour and is not
flagged. The samples' sources measured 29.4 to 86.5; 8 still counts faint line art and a small
mark on a large white page as content.
"""

OVERSIZED_RATIO = 25.0
"""The SVG is `oversized` when it is more than this many times the source's bytes...

Normal traces of the photos measured 1.3-7.7x in fast mode and 2.6-18.3x in slow mode (slow
keeps detail on purpose: chelsea.jpg 18.3x, 509 KB). 25x flags a trace that is worse than
keeping the raster without flagging every slow-mode photo.
"""

OVERSIZED_MIN_BYTES = 200_000
"""...and above this many bytes: small sources make large ratios harmlessly (gradient.png, a
589-byte PNG, traces to 14 KB in fast mode, 24x, and 36 KB in slow mode, 60x)."""


def flags_for(q: Quality) -> list[str]:
    """The flags that apply to `q`, in `ALL_FLAGS` order."""
    found: list[str] = []
    if q.ssim < LOW_FIDELITY_SSIM:
        found.append(LOW_FIDELITY)
    if q.svg_luma_std < NEAR_BLANK_MAX_STD and q.source_luma_std >= NEAR_BLANK_SOURCE_MIN_STD:
        found.append(NEAR_BLANK)
    if q.svg_bytes > OVERSIZED_MIN_BYTES and q.svg_bytes > OVERSIZED_RATIO * q.source_bytes:
        found.append(OVERSIZED)
    return found
