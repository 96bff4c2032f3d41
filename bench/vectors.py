"""Vectors that scale (issue #18): does our SVG of a 128 px icon beat its pixels at 4×?

    uv run python bench/vectors.py                                  # every set, 60 icons each
    uv run python bench/vectors.py --sets simple-icons --sample 20  # a quick subset
    uv run python bench/vectors.py --in-process                     # no service (iterating only)

Ground truth is real vector art from public sets on npm, fetched here with `npm pack` (kept in
`--cache`, default `~/.cache/img2svg-bench/npm`, so later runs are offline). Never by tests:
they use the drawings of our own in `tests/engine/drawings/`.

For each set: a seeded sample of icons is rasterized with resvg at 128 px on the longest side,
on a transparent background; the PNG is converted with `fast` and `slow` by the real service
(`img2svg serve`, one worker process, through its sync endpoint); every SVG is rendered at 4×
and compared with the original vector rendered at 4×, both composited on white (SSIM as in
`engine.fidelity.compare`). Beside them: bicubic upscaling of the 128 px PNG, and vtracer's
defaults (our decoding, then vtracer with only colour mode set, as in `bench/fidelity.py`).

Printed per set: its licence, then mean SSIM@4×, mean bytes and time per image for slow, fast,
bicubic and defaults; icons the engine did not take for flat art (traced by vtracer); SVGs
that failed (conversion or rendering) and SVGs that lost
transparency (drew where the truth is transparent at least a source pixel away from any shape,
or left a hole where it is opaque that far inside); then each goal of issue #18, met or not.
Time is the service's own `img2svg_conversion_seconds` (one worker: one core), so HTTP is out.
Numbers are printed, never asserted: the exit status is 0 whatever they are.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import resvg_py
import vtracer
from PIL import Image

from img2svg.engine.decode import decode_image
from img2svg.engine.fidelity import compare, on_white, render_rgba, render_svg

SIDE = 128
SCALE = 4
SEED = 18
# A pixel counts as "around" the drawing, or "inside" it, this far from its edge (4× pixels).
TRANSPARENCY_MARGIN = SCALE
TRANSPARENCY_TOLERANCE = 8  # alpha out of 255 a renderer may leave there
FAST_BYTES_GOAL = 5_000
SLOW_SECONDS_GOAL = 0.5
DEFAULT_CACHE = Path.home() / ".cache" / "img2svg-bench" / "npm"
SYNC_PATH = "/api-pub/gw/v2/image/img2svg/sync"
# engine.flat draws every shape inside one scaled group; vtracer's output has none.
FLAT_MARK = '<g transform="scale('


@dataclass(frozen=True)
class VectorSet:
    """A public set on npm; `kind` says what kind of art it is."""

    name: str
    package: str
    kind: str


SETS = {
    s.name: s
    for s in (
        VectorSet("flagpack", "@iconify-json/flagpack", "flags: flat colour fields, emblems"),
        VectorSet("fluent-emoji-flat", "@iconify-json/fluent-emoji-flat", "emoji, many colours"),
        VectorSet("simple-icons", "simple-icons", "brand logos, one colour"),
        VectorSet("material-symbols", "@iconify-json/material-symbols", "UI icons, strokes"),
    )
}
# Held out as an independent check (issue #18): never sampled here.
HELD_OUT = ("@iconify-json/logos", "@iconify-json/twemoji")


@dataclass
class Corpus:
    vector_set: VectorSet
    version: str
    licence: str
    icons: dict[str, str]  # name -> SVG document


@dataclass
class Scores:
    ssim: list[float] = field(default_factory=list)
    bytes: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    transparency_lost: list[str] = field(default_factory=list)
    traced: list[str] = field(default_factory=list)  # not drawn as flat art: vtracer's path


# --- corpora -------------------------------------------------------------------------------


def npm_pack(package: str, cache: Path) -> Path:
    """The package's tarball, packed by npm into `cache` once (the newest version then)."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = package.lstrip("@").replace("/", "-")
    found = sorted(cache.glob(f"{stem}-[0-9]*.tgz"))
    if found:
        return found[-1]
    out = subprocess.run(
        ["npm", "pack", package, "--silent", "--pack-destination", str(cache)],
        check=True,
        capture_output=True,
        text=True,
    )
    return cache / out.stdout.strip().splitlines()[-1]


def load(vector_set: VectorSet, cache: Path) -> Corpus:
    tarball = npm_pack(vector_set.package, cache)
    with tarfile.open(tarball) as tar:
        files = {m.name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            handle = tar.extractfile(files[f"package/{name}"])
            assert handle is not None
            return handle.read()

        package = json.loads(read("package.json"))
        if "package/icons.json" in files:  # an Iconify JSON set
            info = json.loads(read("info.json"))
            licence = info["license"].get("spdx") or info["license"]["title"]
            icons = iconify_documents(json.loads(read("icons.json")))
        else:  # simple-icons: one SVG file per brand
            licence = f"{package['license']} (brand marks: see the package's DISCLAIMER.md)"
            icons = {
                Path(name).stem: read(name[len("package/") :]).decode()
                for name in files
                if name.startswith("package/icons/") and name.endswith(".svg")
            }
    return Corpus(vector_set, package["version"], licence, icons)


def iconify_documents(data: dict) -> dict[str, str]:
    """Iconify's JSON (shared defaults, per-icon bodies) as standalone SVG documents."""
    width, height = data.get("width", 16), data.get("height", 16)
    left, top = data.get("left", 0), data.get("top", 0)
    documents = {}
    for name, icon in data["icons"].items():
        if icon.get("hidden"):
            continue
        box = (icon.get("left", left), icon.get("top", top))
        size = (icon.get("width", width), icon.get("height", height))
        documents[name] = (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'viewBox="{box[0]} {box[1]} {size[0]} {size[1]}" width="{size[0]}" '
            f'height="{size[1]}">{icon["body"]}</svg>'
        )
    return documents


def sample(corpus: Corpus, count: int, seed: int) -> list[tuple[str, str]]:
    names = sorted(corpus.icons)
    picked = random.Random(f"{seed}:{corpus.vector_set.name}").sample(names, min(count, len(names)))
    return [(name, corpus.icons[name]) for name in picked]


# --- rendering and scoring -----------------------------------------------------------------


def raster_size(svg: str, side: int) -> tuple[int, int]:
    """Longest side `side`, aspect from resvg's own reading of the document."""
    png = resvg_py.svg_to_bytes(svg_string=svg, dpi=96)
    with Image.open(io.BytesIO(bytes(png))) as im:
        width, height = im.size
    ratio = side / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def rasterize(svg: str, size: tuple[int, int]) -> Image.Image:
    return render_rgba(svg, *size)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def bicubic(source: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The pixels enlarged as a browser would show them: on white, then bicubic."""
    flat = Image.fromarray(on_white(source))
    return np.asarray(flat.resize(size, Image.Resampling.BICUBIC))


def rendered_rgba(svg: str, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(render_rgba(svg, *size))


def transparency_kept(truth_alpha: np.ndarray, alpha: np.ndarray) -> bool:
    """Transparent where the truth is, opaque where it is, a source pixel away from edges."""
    from scipy import ndimage

    structure = np.ones((2 * TRANSPARENCY_MARGIN + 1,) * 2, bool)
    drawn = ndimage.binary_dilation(truth_alpha > 0, structure)
    solid = ndimage.binary_erosion(truth_alpha == 255, structure)
    spill = int(alpha[~drawn].max(initial=0))
    holes = int(255 - alpha[solid].min(initial=255))
    return spill <= TRANSPARENCY_TOLERANCE and holes <= TRANSPARENCY_TOLERANCE


def vtracer_defaults(data: bytes) -> str:
    """As in bench/fidelity.py: our decoding, then vtracer with only colour mode set."""
    buffer = io.BytesIO()
    decode_image(data).save(buffer, "PNG", compress_level=1)
    return vtracer.convert_raw_image_to_svg(buffer.getvalue(), img_format="png", colormode="color")


# --- converting ----------------------------------------------------------------------------


class ServiceConverter:
    """`img2svg serve` with one worker, driven through its sync endpoint."""

    def __init__(self, workdir: Path) -> None:
        import httpx

        from img2svg.service.embedded import EmbeddedService

        self.service = EmbeddedService(workdir / "service", extra_args=["--workers", "1"]).start()
        self.http = httpx.Client(
            base_url=self.service.url, timeout=300, headers={"Authorization": "Bearer bench"}
        )

    def convert(self, data: bytes, mode: str) -> str:
        body = {"image": base64.b64encode(data).decode(), "mode": mode}
        answer = self.http.post(SYNC_PATH, json=body).json()
        if answer.get("code") not in (0, None) or "svg" not in (answer.get("result") or {}):
            raise RuntimeError(f"the service refused: {answer.get('code')} {answer.get('message')}")
        return answer["result"]["svg"]

    def seconds(self) -> dict[str, tuple[float, int]]:
        """(sum, count) of the service's conversion time per mode."""
        totals: dict[str, list[float]] = {}
        for line in self.http.get("/metrics").text.splitlines():
            for suffix, index in (("_sum{", 0), ("_count{", 1)):
                if line.startswith("img2svg_conversion_seconds" + suffix):
                    mode = line.split('mode="', 1)[1].split('"', 1)[0]
                    totals.setdefault(mode, [0.0, 0.0])[index] = float(line.rsplit(" ", 1)[1])
        return {mode: (total, int(count)) for mode, (total, count) in totals.items()}

    def close(self) -> None:
        self.http.close()
        self.service.stop()


class InProcessConverter:
    """The engine called directly: faster to iterate with, not what the goals are judged on."""

    def __init__(self) -> None:
        from img2svg.engine.trace import vectorize

        self._vectorize = vectorize
        self._seconds: dict[str, list[float]] = {}

    def convert(self, data: bytes, mode: str) -> str:
        started = time.process_time()
        svg = self._vectorize(data, mode)
        self._seconds.setdefault(mode, []).append(time.process_time() - started)
        return svg

    def seconds(self) -> dict[str, tuple[float, int]]:
        return {mode: (sum(v), len(v)) for mode, v in self._seconds.items()}

    def close(self) -> None:
        pass


# --- the bench -----------------------------------------------------------------------------

METHODS = ("slow", "fast", "bicubic", "defaults")


def run_set(
    corpus: Corpus,
    icons: list[tuple[str, str]],
    converter: ServiceConverter | InProcessConverter,
    save: Path | None,
) -> dict[str, Scores]:
    scores = {method: Scores() for method in METHODS}
    before = converter.seconds()
    for name, document in icons:
        size = raster_size(document, SIDE)
        big = (size[0] * SCALE, size[1] * SCALE)
        source = rasterize(document, size)
        truth = rasterize(document, big)
        truth_white = on_white(truth)
        truth_alpha = np.asarray(truth)[..., 3]
        data = png_bytes(source)
        scores["bicubic"].ssim.append(compare(truth_white, bicubic(source, big)).ssim)
        if save is not None:
            (save / corpus.vector_set.name).mkdir(parents=True, exist_ok=True)
            source.save(save / corpus.vector_set.name / f"{name}.png")
        for method, convert in converters(converter).items():
            started = time.process_time()
            try:
                svg = convert(data)
                elapsed = time.process_time() - started
                rgba = rendered_rgba(svg, big)
            except Exception as exc:
                scores[method].failed.append(f"{name}: {exc}")
                continue
            if save is not None:
                (save / corpus.vector_set.name / f"{name}.{method}.svg").write_text(svg)
            rendered = render_svg(svg, *big)
            scores[method].ssim.append(compare(truth_white, rendered).ssim)
            scores[method].bytes.append(len(svg.encode()))
            if method != "defaults" and FLAT_MARK not in svg:
                scores[method].traced.append(name)
            if method == "defaults":
                scores[method].seconds.append(elapsed)
            if not transparency_kept(truth_alpha, rgba[..., 3]):
                scores[method].transparency_lost.append(name)
    after = converter.seconds()
    for mode in ("slow", "fast"):
        total = after.get(mode, (0.0, 0))[0] - before.get(mode, (0.0, 0))[0]
        count = after.get(mode, (0.0, 0))[1] - before.get(mode, (0.0, 0))[1]
        scores[mode].seconds = [total / count] * count if count else []
    return scores


def converters(converter: ServiceConverter | InProcessConverter) -> dict[str, Callable]:
    return {
        "slow": lambda data: converter.convert(data, "slow"),
        "fast": lambda data: converter.convert(data, "fast"),
        "defaults": vtracer_defaults,
    }


def mean(values: list[float] | list[int]) -> float:
    return statistics.fmean(values) if values else float("nan")


def report(corpus: Corpus, count: int, scores: dict[str, Scores]) -> Iterator[str]:
    vs = corpus.vector_set
    yield f"\n## {vs.name}: {vs.package} {corpus.version} ({vs.kind}), licence {corpus.licence}"
    yield f"{count} icons of {len(corpus.icons)}, {SIDE} px -> SSIM at {SCALE}x\n"
    yield "| method | SSIM@4x | mean bytes | s/image | failed | transparency lost |"
    yield "|---|---:|---:|---:|---:|---:|"
    for method in METHODS:
        s = scores[method]
        size = f"{mean(s.bytes):.0f}" if s.bytes else "-"
        secs = f"{mean(s.seconds):.3f}" if s.seconds else "-"
        svgs = method != "bicubic"
        yield (
            f"| {method} | {mean(s.ssim):.4f} | {size} | {secs} "
            f"| {len(s.failed) if svgs else '-'} | {len(s.transparency_lost) if svgs else '-'} |"
        )
    for method in ("slow", "fast"):
        for failure in scores[method].failed[:5]:
            yield f"  {method} failed: {failure}"
        if scores[method].traced:
            traced = ", ".join(scores[method].traced[:8])
            yield f"  {method} traced by vtracer, not drawn as flat art: {traced}"
        if scores[method].transparency_lost:
            lost = ", ".join(scores[method].transparency_lost[:8])
            yield f"  {method} lost transparency: {lost}"


def goals(scores: dict[str, Scores]) -> Iterator[tuple[str, bool]]:
    slow, fast = scores["slow"], scores["fast"]
    bic, defaults = scores["bicubic"], scores["defaults"]
    yield (
        f"slow SSIM {mean(slow.ssim):.4f} >= bicubic {mean(bic.ssim):.4f}",
        mean(slow.ssim) >= mean(bic.ssim),
    )
    yield (
        f"slow bytes {mean(slow.bytes):.0f} <= defaults {mean(defaults.bytes):.0f}",
        mean(slow.bytes) <= mean(defaults.bytes),
    )
    yield (
        f"fast SSIM {mean(fast.ssim):.4f} >= defaults {mean(defaults.ssim):.4f}",
        mean(fast.ssim) >= mean(defaults.ssim),
    )
    yield (f"fast bytes {mean(fast.bytes):.0f} <= {FAST_BYTES_GOAL}", mean(fast.bytes) <= 5000)
    failed = len(slow.failed) + len(fast.failed)
    yield f"no failed SVG ({failed} failed)", failed == 0
    lost = len(slow.transparency_lost) + len(fast.transparency_lost)
    yield f"transparency kept ({lost} lost)", lost == 0
    secs = mean(slow.seconds)
    yield f"slow {secs:.3f} s per icon <= {SLOW_SECONDS_GOAL}", secs <= SLOW_SECONDS_GOAL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated set names")
    parser.add_argument("--sample", type=int, default=60, help="icons per set")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="npm tarballs")
    parser.add_argument("--save", type=Path, help="write sources and SVGs here, to look at")
    parser.add_argument(
        "--in-process", action="store_true", help="call the engine directly, without a service"
    )
    args = parser.parse_args(argv)
    chosen = [SETS[name] for name in args.sets.split(",")]
    assert not {s.package for s in chosen} & set(HELD_OUT)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="img2svg-vectors-") as tmp:
        converter = InProcessConverter() if args.in_process else ServiceConverter(Path(tmp))
        try:
            verdicts = []
            for vector_set in chosen:
                corpus = load(vector_set, args.cache)
                icons = sample(corpus, args.sample, args.seed)
                scores = run_set(corpus, icons, converter, args.save)
                for line in report(corpus, len(icons), scores):
                    print(line, flush=True)
                verdicts.append((vector_set.name, list(goals(scores))))
        finally:
            converter.close()
    print("\n## goals (issue #18)")
    for name, checks in verdicts:
        for text, met in checks:
            print(f"{'PASS' if met else 'FAIL'} {name}: {text}")
    print(f"\nbench wall time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
