"""Generate the sample images the engine is tuned and tested on.

Run from the repository root: `uv run python manifests/make_samples.py`. The set is small on
purpose (well under 2 MB) but covers what broke vectorizers before: flat art, a smooth
gradient, partial transparency, an animated palette GIF, photos, CMYK, 16-bit grey and an
EXIF-rotated JPEG. Photos come from scikit-image's bundled data, so nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFont

OUT = Path(__file__).resolve().parent / "images"


def logo() -> Image.Image:
    """Flat colours, hard edges and lettering: the case vectorizing exists for."""
    img = Image.new("RGB", (480, 320), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((20, 20, 460, 300), radius=36, fill=(24, 56, 112))
    draw.ellipse((50, 60, 210, 220), fill=(238, 180, 34))
    draw.polygon([(130, 80), (190, 190), (70, 190)], fill=(200, 40, 50))
    draw.rectangle((240, 70, 430, 110), fill=(250, 250, 245))
    draw.line((240, 140, 430, 140), fill=(238, 180, 34), width=8)
    font = ImageFont.load_default(size=54)
    draw.text((240, 170), "img2svg", font=font, fill=(250, 250, 245))
    draw.text((62, 236), "v1", font=ImageFont.load_default(size=36), fill=(238, 180, 34))
    return img


def gradient() -> Image.Image:
    """Smooth two-axis gradient: vtracer's classic failure is collapsing it to one colour."""
    y, x = np.mgrid[0:256, 0:256].astype(np.float32) / 255.0
    rgb = np.stack([x * 255, y * 255, (1 - x) * 180 + 40], axis=2)
    return Image.fromarray(rgb.round().astype(np.uint8), "RGB")


def icon_alpha() -> Image.Image:
    """Transparent background, an opaque shape, a half-transparent overlay and a soft shadow."""
    img = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    shadow = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    ImageDraw.Draw(shadow).ellipse((44, 52, 228, 236), fill=(0, 0, 0, 90))
    img.alpha_composite(shadow)
    draw = ImageDraw.Draw(img)
    draw.ellipse((32, 32, 216, 216), fill=(46, 139, 87, 255))
    overlay = Image.new("RGBA", (256, 256), (0, 0, 0, 0))
    ImageDraw.Draw(overlay).rectangle((100, 90, 240, 170), fill=(30, 80, 220, 128))
    img.alpha_composite(overlay)
    return img


def palette_frames() -> list[Image.Image]:
    """Two different frames: only the first must be traced."""
    frames = []
    for shift, colour in ((0, (220, 30, 30)), (60, (30, 30, 220))):
        img = Image.new("RGB", (200, 150), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        draw.rectangle((20 + shift, 30, 100 + shift, 120), fill=colour)
        draw.ellipse((120 - shift // 2, 40, 180 - shift // 2, 100), fill=(20, 160, 60))
        frames.append(img.quantize(16, method=Image.Quantize.MEDIANCUT))
    return frames


def grey16() -> Image.Image:
    """16-bit greyscale: naive conversion to 8 bits clips everything to white."""
    camera = Image.fromarray(skimage.data.camera()).resize((256, 256), Image.Resampling.LANCZOS)
    wide = np.asarray(camera).astype(np.uint16) * 257
    return Image.fromarray(wide)


def photo(name: str, side: int | None = None) -> Callable[[], Image.Image]:
    def make() -> Image.Image:
        img = Image.fromarray(getattr(skimage.data, name)())
        if side is not None:
            img.thumbnail((side, side), Image.Resampling.LANCZOS)
        return img

    return make


def exif_rotated() -> tuple[Image.Image, bytes]:
    """Stored sideways with Orientation=6, as phones do: decoded must come out upright."""
    upright = photo("rocket", 240)()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    return upright.transpose(Image.Transpose.ROTATE_90), exif.tobytes()


def write_all(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(name: str, img: Image.Image, **params: object) -> None:
        path = out / name
        img.save(path, **params)
        written.append(path)

    save("logo.png", logo(), optimize=True)
    save("gradient.png", gradient(), optimize=True)
    save("icon_alpha.png", icon_alpha(), optimize=True)
    first, *rest = palette_frames()
    save("palette.gif", first, save_all=True, append_images=rest, duration=500, loop=0)
    save("astronaut.jpg", photo("astronaut")(), quality=85)
    save("chelsea.jpg", photo("chelsea")(), quality=85)
    save("coffee.jpg", photo("coffee")(), quality=85)
    save("cmyk.jpg", photo("coffee", 300)().convert("CMYK"), quality=90)
    save("grey16.png", grey16())
    sideways, exif = exif_rotated()
    save("exif_rotated.jpg", sideways, quality=85, exif=exif)
    return written


def main() -> None:
    written = write_all()
    total = sum(p.stat().st_size for p in written)
    for path in written:
        with Image.open(path) as img:
            info = f"{img.format} {img.mode} {img.size[0]}x{img.size[1]}"
        print(f"{path.name:18} {path.stat().st_size:>8} B  {info}")
    print(f"total {total / 1024:.0f} KiB")
    if total >= 2 * 1024 * 1024:
        raise SystemExit("samples exceed 2 MB: too big to commit")


if __name__ == "__main__":
    main()
