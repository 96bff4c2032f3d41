"""Compare vtracer's defaults with the fast and slow presets on the sample images and photos.

    uv run python bench/fidelity.py [--runs N] [--images DIR] [--no-skimage] [--check]

Samples: every file in DIR (default `manifests/images`) plus, unless --no-skimage, colour
photos bundled with scikit-image (`skimage.data`, offline; one whose name is already a file in
DIR is skipped), encoded losslessly as PNG. Photos are the JPEG files and the scikit-image ones.

For every sample and mode: median wall time over N runs (in this process, single core),
SVG bytes, and fidelity (SSIM, PSNR) of the SVG rendered back at the source size, both on
white. "defaults" gets the same decoded pixels as the presets (EXIF, CMYK, 16-bit and frame
handling are ours in all three rows), re-encoded as PNG, and vtracer's own defaults apart from
colour mode; its time includes that decode. Printed: a Markdown table of every cell, a table of
the photos against defaults (bytes as % of defaults, SSIM minus defaults' SSIM, per photo and
mean), then whether the presets meet their goals:

* fast on photos (issue #11): every photo at most 10 % of defaults' bytes, and the mean SSIM
  at least defaults' mean SSIM - 0.03;
* slow has a higher SSIM than defaults on every sample;
* gradients do not collapse: gradient.png above 25 dB PSNR in both modes.

With --check the exit status is 1 when a goal is missed, for CI.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import vtracer

from img2svg.engine.decode import decode_image
from img2svg.engine.fidelity import fidelity
from img2svg.engine.trace import vectorize

ROOT = Path(__file__).resolve().parents[1]
MODES = ("defaults", "fast", "slow")
PHOTO_SUFFIXES = (".jpg", ".jpeg")
# Colour photos shipped inside scikit-image (no download): name -> attribute of skimage.data.
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "stereo_motorcycle",  # the left image
    "retina",  # 1411 px: larger than fast's max_side, so the shrink is measured too
    "hubble_deep_field",
)
SKIMAGE_PREFIX = "skimage:"
FAST_PHOTO_BYTES_GOAL = 0.10  # at most, for every photo
FAST_PHOTO_SSIM_MARGIN = 0.03  # mean fast SSIM >= mean defaults SSIM - this
GRADIENT_PSNR_GOAL = 25.0


@dataclass(frozen=True)
class Sample:
    name: str
    data: bytes
    photo: bool


@dataclass(frozen=True)
class Row:
    image: str
    mode: str
    ms: float
    bytes: int
    ssim: float
    psnr: float


def samples(images: Path | None, with_skimage: bool) -> list[Sample]:
    found = []
    if images is not None:
        found = [
            Sample(p.name, p.read_bytes(), p.suffix.lower() in PHOTO_SUFFIXES)
            for p in sorted(images.iterdir())
            if p.is_file()
        ]
    if with_skimage:
        stems = {Path(s.name).stem for s in found}
        found += skimage_photos(exclude=stems)
    return found


def skimage_photos(exclude: set[str]) -> list[Sample]:
    """The bundled colour photos as lossless PNG bytes; any that is unavailable is skipped."""
    import numpy as np
    import skimage.data
    from PIL import Image

    found = []
    for name in SKIMAGE_PHOTOS:
        if name in exclude:
            continue
        try:
            pixels = getattr(skimage.data, name)()
        except Exception as exc:  # e.g. a data file that would need a download
            print(f"skipped skimage.data.{name}: {exc}", file=sys.stderr)
            continue
        if isinstance(pixels, tuple):
            pixels = pixels[0]
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(pixels)).save(buffer, "PNG", compress_level=1)
        found.append(Sample(SKIMAGE_PREFIX + name, buffer.getvalue(), photo=True))
    return found


def vtracer_defaults(data: bytes) -> str:
    """The baseline: our decoding, then vtracer with nothing but colour mode set."""
    buffer = io.BytesIO()
    decode_image(data).save(buffer, "PNG", compress_level=1)
    return vtracer.convert_raw_image_to_svg(buffer.getvalue(), img_format="png", colormode="color")


def converter(mode: str) -> Callable[[bytes], str]:
    if mode == "defaults":
        return vtracer_defaults
    return lambda data: vectorize(data, mode)


def measure(sample: Sample, mode: str, runs: int) -> Row:
    convert = converter(mode)
    times = []
    svg = ""
    for _ in range(runs):
        started = time.perf_counter()
        svg = convert(sample.data)
        times.append((time.perf_counter() - started) * 1000)
    score = fidelity(sample.data, svg)
    return Row(
        sample.name, mode, statistics.median(times), len(svg.encode()), score.ssim, score.psnr
    )


def table(rows: list[Row]) -> str:
    lines = ["| image | mode | ms | bytes | SSIM | PSNR |", "|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r.image} | {r.mode} | {r.ms:.0f} | {r.bytes} | {r.ssim:.4f} | {r.psnr:.2f} |"
        for r in rows
    ]
    return "\n".join(lines)


def photo_table(rows: list[Row], photos: list[str]) -> str:
    """Per photo and mean: fast and slow bytes as % of defaults, SSIM against defaults."""
    by = {(r.image, r.mode): r for r in rows}
    lines = [
        "| photo | defaults bytes | defaults SSIM | fast bytes % | fast SSIM | fast ΔSSIM "
        "| slow bytes % | slow SSIM | slow ΔSSIM | fast ms | slow ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for image in [*photos, None]:
        pick = photos if image is None else [image]

        def mean(mode: str, attr: str, pick: list[str] = pick) -> float:
            return statistics.fmean(getattr(by[i, mode], attr) for i in pick)

        def ratio(mode: str, pick: list[str] = pick) -> float:
            return statistics.fmean(by[i, mode].bytes / by[i, "defaults"].bytes for i in pick)

        d_ssim = mean("defaults", "ssim")
        label = f"**mean of {len(photos)}**" if image is None else image
        lines.append(
            f"| {label} | {mean('defaults', 'bytes'):.0f} | {d_ssim:.4f} "
            f"| {ratio('fast'):.1%} | {mean('fast', 'ssim'):.4f} "
            f"| {mean('fast', 'ssim') - d_ssim:+.4f} "
            f"| {ratio('slow'):.1%} | {mean('slow', 'ssim'):.4f} "
            f"| {mean('slow', 'ssim') - d_ssim:+.4f} "
            f"| {mean('fast', 'ms'):.0f} | {mean('slow', 'ms'):.0f} |"
        )
    return "\n".join(lines)


def fast_photo_goal(rows: list[Row], photos: list[str]) -> tuple[str, bool]:
    """Issue #11: every photo ≤ 10 % of defaults' bytes, mean SSIM ≥ defaults' mean - 0.03."""
    by = {(r.image, r.mode): r for r in rows}
    if not photos:
        return "fast on photos: FAIL (no photo sample)", False
    ratios = {i: by[i, "fast"].bytes / by[i, "defaults"].bytes for i in photos}
    worst = max(ratios, key=ratios.__getitem__)
    fast_ssim = statistics.fmean(by[i, "fast"].ssim for i in photos)
    floor = statistics.fmean(by[i, "defaults"].ssim for i in photos) - FAST_PHOTO_SSIM_MARGIN
    bytes_ok = ratios[worst] <= FAST_PHOTO_BYTES_GOAL
    ssim_ok = fast_ssim >= floor
    met = bytes_ok and ssim_ok
    line = (
        f"{'PASS' if met else 'FAIL'} fast on {len(photos)} photos: "
        f"bytes max {ratios[worst]:.1%} ({worst}), mean {statistics.fmean(ratios.values()):.1%} "
        f"(goal ≤ {FAST_PHOTO_BYTES_GOAL:.0%} each: {'met' if bytes_ok else 'MISSED'}); "
        f"mean SSIM {fast_ssim:.4f} vs floor {floor:.4f} = defaults - {FAST_PHOTO_SSIM_MARGIN:g} "
        f"({'met' if ssim_ok else 'MISSED'})"
    )
    return line, met


def summary(rows: list[Row], photos: list[str]) -> tuple[list[str], bool]:
    """Human-readable verdicts, and whether every goal was met."""
    by = {(r.image, r.mode): r for r in rows}
    images = list(dict.fromkeys(r.image for r in rows))
    losers = [i for i in images if by[i, "slow"].ssim <= by[i, "defaults"].ssim]
    gradients = [i for i in images if "gradient" in i]
    flat = [
        f"{i} {m} {by[i, m].psnr:.1f} dB"
        for i in gradients
        for m in ("fast", "slow")
        if by[i, m].psnr <= GRADIENT_PSNR_GOAL
    ]
    fast_line, fast_ok = fast_photo_goal(rows, photos)
    slow_ok = not losers
    gradient_ok = bool(gradients) and not flat
    lines = [
        fast_line,
        f"{'PASS' if slow_ok else 'FAIL'} slow beats defaults on SSIM for every sample"
        + ("" if slow_ok else f" ({', '.join(losers)})"),
        f"{'PASS' if gradient_ok else 'FAIL'} gradients above {GRADIENT_PSNR_GOAL:g} dB "
        "in fast and slow" + ("" if gradient_ok else f" ({', '.join(flat) or 'no gradient'})"),
    ]
    total = {m: sum(r.ms for r in rows if r.mode == m) for m in MODES}
    lines.append(
        "total ms (sum of medians over all samples): "
        + ", ".join(f"{m} {total[m]:.0f}" for m in MODES)
    )
    return lines, slow_ok and fast_ok and gradient_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--images", type=Path, default=ROOT / "manifests" / "images")
    parser.add_argument(
        "--no-skimage", action="store_true", help="only the files in --images, no bundled photos"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    found = samples(args.images, with_skimage=not args.no_skimage)
    rows = [measure(sample, mode, max(1, args.runs)) for sample in found for mode in MODES]
    photos = [s.name for s in found if s.photo]
    print(table(rows))
    print()
    print(photo_table(rows, photos) if photos else "no photo sample")
    print()
    verdicts, met = summary(rows, photos)
    for line in verdicts:
        print(line)
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
