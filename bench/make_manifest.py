"""Write a synthetic manifest of N distinct images, for timing and chaos runs.

    uv run python bench/make_manifest.py /tmp/m1000 --rows 1000 [--duplicates 0.1] [--bad 0.02]

Each image is a small flat-colour drawing (distinct by construction, so the service creates one
task per image); `--duplicates` repeats earlier images under new row ids (to show dedupe) and
`--bad` adds rows that point at missing files (to show `invalid` rows). Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw


def draw(seed: int, size: int) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    pen = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.randrange(size // 2), rng.randrange(size // 2)
        x1, y1 = x0 + rng.randrange(8, size // 2), y0 + rng.randrange(8, size // 2)
        colour = tuple(rng.randrange(256) for _ in range(3))
        shape = rng.choice([pen.rectangle, pen.ellipse])
        shape((x0, y0, x1, y1), fill=colour)
    # The seed drawn in as pixels makes every image distinct even when the shapes coincide.
    pen.text((2, size - 12), str(seed), fill=(0, 0, 0))
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for manifest.csv and images/")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of repeated images")
    parser.add_argument("--bad", type=float, default=0.0, help="share of rows with missing files")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    with (args.out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "image_url"])
        for i in range(args.rows):
            roll = rng.random()
            if roll < args.bad:
                ref = f"images/missing-{i}.png"
            elif written and roll < args.bad + args.duplicates:
                ref = rng.choice(written)
            else:
                ref = f"images/{i:06d}.png"
                draw(args.seed * 1_000_003 + i, args.size).save(args.out / ref)
                written.append(ref)
            writer.writerow([f"row-{i:06d}", ref])
    print(f"{args.rows} rows, {len(written)} distinct images -> {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
