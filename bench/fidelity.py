"""Compare vtracer's defaults with the fast and slow presets on the sample images.

    uv run python bench/fidelity.py [--runs N] [--images DIR] [--check]

For every image and mode: median wall time over N runs (in this process, single core),
SVG bytes, and fidelity (SSIM, PSNR) of the SVG rendered back at the source size, both on
white. "defaults" gets the same decoded pixels as the presets (EXIF, CMYK, 16-bit and frame
handling are ours in all three rows), re-encoded as PNG, and vtracer's own defaults apart from
colour mode; its time includes that decode. A Markdown table is printed, then whether the
presets meet their goals:

* slow has a higher SSIM than defaults on every image;
* fast is much smaller than defaults on photos (JPEG samples): under 20 % of the bytes;
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
FAST_PHOTO_BYTES_GOAL = 0.20
GRADIENT_PSNR_GOAL = 25.0


@dataclass(frozen=True)
class Row:
    image: str
    mode: str
    ms: float
    bytes: int
    ssim: float
    psnr: float


def vtracer_defaults(data: bytes) -> str:
    """The baseline: our decoding, then vtracer with nothing but colour mode set."""
    buffer = io.BytesIO()
    decode_image(data).save(buffer, "PNG", compress_level=1)
    return vtracer.convert_raw_image_to_svg(buffer.getvalue(), img_format="png", colormode="color")


def converter(mode: str) -> Callable[[bytes], str]:
    if mode == "defaults":
        return vtracer_defaults
    return lambda data: vectorize(data, mode)


def measure(path: Path, mode: str, runs: int) -> Row:
    data = path.read_bytes()
    convert = converter(mode)
    times = []
    svg = ""
    for _ in range(runs):
        started = time.perf_counter()
        svg = convert(data)
        times.append((time.perf_counter() - started) * 1000)
    score = fidelity(data, svg)
    return Row(path.name, mode, statistics.median(times), len(svg.encode()), score.ssim, score.psnr)


def table(rows: list[Row]) -> str:
    lines = ["| image | mode | ms | bytes | SSIM | PSNR |", "|---|---|---:|---:|---:|---:|"]
    lines += [
        f"| {r.image} | {r.mode} | {r.ms:.0f} | {r.bytes} | {r.ssim:.4f} | {r.psnr:.2f} |"
        for r in rows
    ]
    return "\n".join(lines)


def summary(rows: list[Row]) -> tuple[list[str], bool]:
    """Human-readable verdicts, and whether every goal was met."""
    by = {(r.image, r.mode): r for r in rows}
    images = sorted({r.image for r in rows})
    losers = [i for i in images if by[i, "slow"].ssim <= by[i, "defaults"].ssim]
    ratios = {i: by[i, "fast"].bytes / by[i, "defaults"].bytes for i in images}
    photos = [i for i in images if i.lower().endswith(PHOTO_SUFFIXES)]
    photo_ratios = [ratios[i] for i in photos]
    gradients = [i for i in images if "gradient" in i]
    flat = [
        f"{i} {m} {by[i, m].psnr:.1f} dB"
        for i in gradients
        for m in ("fast", "slow")
        if by[i, m].psnr <= GRADIENT_PSNR_GOAL
    ]
    slow_ok = not losers
    fast_ok = bool(photo_ratios) and max(photo_ratios) < FAST_PHOTO_BYTES_GOAL
    gradient_ok = bool(gradients) and not flat
    lines = [
        "slow beats defaults on SSIM for every image: "
        + ("yes" if slow_ok else f"NO ({', '.join(losers)})"),
        f"fast bytes vs defaults: photos {_percent(photo_ratios)}, "
        f"all images {_percent(list(ratios.values()))} "
        f"(goal: every photo < {FAST_PHOTO_BYTES_GOAL:.0%}): {'met' if fast_ok else 'MISSED'}",
        f"gradients above {GRADIENT_PSNR_GOAL:g} dB in fast and slow: "
        + ("yes" if gradient_ok else f"NO ({', '.join(flat) or 'no gradient sample'})"),
    ]
    return lines, slow_ok and fast_ok and gradient_ok


def _percent(ratios: list[float]) -> str:
    if not ratios:
        return "n/a"
    return f"median {statistics.median(ratios):.1%} (min {min(ratios):.1%}, max {max(ratios):.1%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per cell (median)")
    parser.add_argument("--images", type=Path, default=ROOT / "manifests" / "images")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.images.iterdir() if p.is_file())
    rows = [measure(path, mode, max(1, args.runs)) for path in paths for mode in MODES]
    print(table(rows))
    print()
    verdicts, met = summary(rows)
    for line in verdicts:
        print(line)
    return 0 if met or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
