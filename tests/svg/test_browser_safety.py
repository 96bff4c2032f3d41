"""Stored SVGs, opened in a real browser every way a web page shows them, run nothing and load
nothing; benign SVGs are kept and draw exactly as before (issue #16).

A sanitizer is judged by what a browser does with its output, not by what the sanitizer
believes it removed: the corpus in `tests/svg/corpus/` holds hostile documents written to
make Chromium run script or fetch a URL (CSS tokenizer tricks, HTML-versus-XML parser
differentials, SMIL, external references, event handlers, DTDs), and each is opened the four
ways of `tests/svg/harness.py` (file://, innerHTML, pasted into text/html, <img>) both as
stored (`check_svg`, then `sanitize_svg`) and raw. The raw run is the harness's self-test:
every document the index marks `fires_raw` must fire raw, in each mode recorded for it, so a
harness that sees nothing cannot pass.

Benign documents are compared pixel for pixel, original against stored, as rendered by
Chromium (as a document and as <img>) and by resvg (what the pipeline's scorer uses).

The run prints a summary line (`pytest -s`) and writes it, with details, to
tests/output/svg-safety.txt.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import resvg_py
from PIL import Image

from img2svg.svg import sanitize_svg
from img2svg.svg.check import InvalidSvg, check_svg
from tests.quality.chromium import Chromium, chromium_or_skip
from tests.svg.harness import (
    CLASSES,
    MODES,
    Entry,
    Harness,
    Job,
    Observation,
    PageServer,
    chunks,
    leak_owner,
    leak_server,
    load_benign,
    load_corpus,
    run_jobs,
    split_by_owner,
    start_browser,
)

OUTPUT = Path(__file__).resolve().parents[1] / "output" / "svg-safety.txt"
LANES = 4  # browsers side by side; an open mostly waits, so four overlap well on two cores
BATCH = 25  # raw documents per page in the self-test's batch pages
CLIP = {"x": 0, "y": 0, "width": 280, "height": 280, "scale": 1}  # benign SVGs are 240x240


def store(raw: bytes) -> bytes:
    """What the pipeline keeps of an SVG it received (InvalidSvg when it keeps nothing)."""
    check_svg(raw)
    return sanitize_svg(raw).data


@dataclass
class Drawn:
    """One benign document: kept or refused, and whether each renderer drew it the same."""

    kept: bool
    stored: bytes = b""
    changed: bool = False  # stored bytes differ from the original (allowed; drawing must not)
    same: dict[str, bool] = field(default_factory=dict)  # renderer -> identical pixels


@dataclass
class Report:
    """Everything the run saw, for the asserts and for tests/output/svg-safety.txt."""

    entries: list[Entry]
    refused: dict[str, str] = field(default_factory=dict)
    stored: dict[str, bytes] = field(default_factory=dict)
    stored_fired: dict[str, dict[str, Observation]] = field(default_factory=dict)
    raw_fired: dict[str, dict[str, Observation]] = field(default_factory=dict)
    raw_detectors: set[str] = field(default_factory=set)
    stray_leaks: list[str] = field(default_factory=list)
    benign: dict[str, Drawn] = field(default_factory=dict)
    distinct_stored: int = 0
    singles: int = 0  # raw (document, mode) pairs opened alone because no batch showed them
    opens: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        raw_by_mode = Counter(mode for modes in self.raw_fired.values() for mode in modes)
        stored_by_mode = Counter(mode for modes in self.stored_fired.values() for mode in modes)
        kept = sum(drawn.kept for drawn in self.benign.values())
        same = sum(drawn.kept and all(drawn.same.values()) for drawn in self.benign.values())
        return (
            f"svg safety: hostile={len(self.entries)} refused={len(self.refused)}"
            f" stored={len(self.stored)} (distinct {self.distinct_stored})"
            f" fired_raw={len(self.raw_fired)}"
            f" ({' '.join(f'{m}={raw_by_mode[m]}' for m in MODES)})"
            f" fired_after_sanitizing={len(self.stored_fired)}"
            f" ({' '.join(f'{m}={stored_by_mode[m]}' for m in MODES)})"
            f" benign_kept={kept}/{len(self.benign)} benign_same={same}/{len(self.benign)}"
            f" opens={self.opens} (raw alone {self.singles}) seconds={self.seconds:.1f}"
        )

    def details(self) -> str:
        lines = [self.summary(), ""]
        classes = Counter(entry.klass for entry in self.entries)
        fired = Counter(entry.klass for entry in self.entries if entry.name in self.raw_fired)
        refused = Counter(entry.klass for entry in self.entries if entry.name in self.refused)
        lines += [
            f"class {k}: hostile={classes[k]} fired_raw={fired[k]} refused={refused[k]}"
            for k in CLASSES
        ]
        lines += ["", "fired after sanitizing:"]
        for name, modes in sorted(self.stored_fired.items()):
            for mode, seen in modes.items():
                lines.append(f"  {name} [{mode}]: {seen.summary()}")
            lines.append(f"    stored: {self.stored[name].decode(errors='replace')!r}")
        if self.stray_leaks:
            lines.append(f"leaks naming no phase and document: {self.stray_leaks}")
        lines += ["", f"refused: {sorted(self.refused)}", "", "benign:"]
        for name, drawn in sorted(self.benign.items()):
            lines.append(f"  {name}: kept={drawn.kept} changed={drawn.changed} same={drawn.same}")
            if not all(drawn.same.values()):
                lines.append(f"    stored: {drawn.stored.decode(errors='replace')!r}")
        return "\n".join(lines) + "\n"


async def check_everything(
    binary: str, folder: Path, keep: Callable[[bytes], bytes] = store
) -> Report:
    """Run the whole check with `keep` as the pipeline's storing step (the default is the
    project's; another, such as an older sanitizer, can be passed to compare)."""
    started = time.monotonic()
    report = Report(load_corpus())
    with leak_server() as leak, PageServer() as pages:
        browsers = await asyncio.gather(
            *(start_browser(binary, folder / f"profile-{lane}") for lane in range(LANES))
        )
        try:
            lanes = [Harness(browser, leak, pages, folder / "docs") for browser in browsers]
            await _stored_phase(report, lanes, keep)
            await _raw_phase(report, lanes)
            await _benign_phase(report, lanes, keep)
            phases = {"stored"} | {f"raw-{mode}" for mode in MODES}
            report.stray_leaks = [path for path in leak.paths if leak_owner(path)[0] not in phases]
        finally:
            for browser in browsers:
                await browser.__aexit__()
    report.opens = sum(lane.opens for lane in lanes)
    report.seconds = time.monotonic() - started
    return report


async def _stored_phase(
    report: Report, lanes: list[Harness], keep: Callable[[bytes], bytes]
) -> None:
    """Every stored document, each distinct one in a fresh navigation per mode (documents
    whose stored bytes are the same are opened once, for all of them)."""
    leak_origin = lanes[0].leak.origin
    groups: dict[str, list[str]] = {}
    for entry in report.entries:
        try:
            data = keep(entry.render(leak_origin, "stored"))
        except InvalidSvg as refusal:
            report.refused[entry.name] = str(refusal)
            continue
        report.stored[entry.name] = data
        key = f"stored/{hashlib.sha256(data).hexdigest()[:16]}"
        groups.setdefault(key, []).append(entry.name)
        lanes[0].publish(key, data)
    report.distinct_stored = len(groups)
    jobs = [
        Job((key,), MODES, tuple(f"/stored/{name}/" for name in names))
        for key, names in groups.items()
    ]
    for job, by_mode in (await run_jobs(lanes, jobs)).items():
        for mode, seen in by_mode.items():
            if seen.fired():
                for name in groups[job.keys[0]]:
                    report.stored_fired.setdefault(name, {})[mode] = seen


async def _raw_phase(report: Report, lanes: list[Harness]) -> None:
    """The self-test: raw documents in batch pages (each payload names its document), then
    one fresh navigation for each (document, mode) the index says fires but no batch showed
    firing (a click or autofocus reaches one document per page; a plain request names none).
    Each mode gets its own copies, whose LEAK_URL says the mode (`/raw-file/<name>/...`), so
    batches running side by side in other lanes cannot lend a leak to the wrong mode."""
    leak_origin = lanes[0].leak.origin
    names = [entry.name for entry in report.entries]
    for mode in MODES:
        for entry in report.entries:
            lanes[0].publish(f"raw-{mode}/{entry.name}", entry.render(leak_origin, f"raw-{mode}"))

    def job(mode: str, batch: list[str]) -> Job:
        keys = tuple(f"raw-{mode}/{name}" for name in batch)
        return Job(keys, (mode,), tuple(f"/{key}/" for key in keys))

    batches = [
        job(mode, batch)
        for mode in MODES
        for batch in chunks(names, len(names) if mode == "img" else BATCH)
    ]
    seen: dict[str, dict[str, Observation]] = {}
    for by_mode in (await run_jobs(lanes, batches)).values():
        for mode, observation in by_mode.items():
            report.raw_detectors |= observation.detectors()
            for name, part in split_by_owner(observation).items():
                if name and part.fired():
                    seen.setdefault(name, {})[mode] = part
    # Twice at most: a raw document that does fire may miss its moment once on a loaded
    # machine; that is a matter for the self-test only (stored documents get no second try,
    # and need none: they must not fire at all).
    for _ in range(2):
        singles = [
            job(mode, [entry.name])
            for entry in report.entries
            for mode in entry.fires_raw_in
            if mode not in seen.get(entry.name, {})
        ]
        report.singles += len(singles)
        for single, by_mode in (await run_jobs(lanes, singles)).items():
            for mode, observation in by_mode.items():
                report.raw_detectors |= observation.detectors()
                if observation.fired():
                    name = single.keys[0].split("/", 1)[1]
                    seen.setdefault(name, {})[mode] = observation
    report.raw_fired = seen


async def _benign_phase(
    report: Report, lanes: list[Harness], keep: Callable[[bytes], bytes]
) -> None:
    """Each benign document drawn before and after storing: by Chromium as a document and as
    <img>, and by resvg."""
    documents = load_benign()
    pairs: dict[str, tuple[bytes, bytes]] = {}
    for name, original in documents.items():
        try:
            stored = keep(original)
        except InvalidSvg:
            report.benign[name] = Drawn(kept=False)
            continue
        pairs[name] = (original, stored)
        report.benign[name] = Drawn(kept=True, stored=stored, changed=stored != original)
        lanes[0].publish(f"benign/original/{name}", original)
        lanes[0].publish(f"benign/stored/{name}", stored)
    queue = list(pairs)

    async def lane(run: Harness) -> None:
        while queue:
            name = queue.pop()
            for mode in ("file", "img"):
                shots = [
                    await _screenshot(run, f"benign/{version}/{name}", mode)
                    for version in ("original", "stored")
                ]
                report.benign[name].same[f"chromium-{mode}"] = _same_pixels(*shots)

    await asyncio.gather(*(lane(run) for run in lanes))
    for name, (original, stored) in pairs.items():
        report.benign[name].same["resvg"] = _same_pixels(_resvg(original), _resvg(stored))


async def _screenshot(run: Harness, key: str, mode: str) -> bytes:
    """The picture once drawn: images decoded, fonts loaded and two frames painted, so the
    two versions are never caught at different points of their first paint."""
    browser: Chromium = run.browser
    await browser.navigate(run.url(key, mode), timeout_s=30)
    await browser.evaluate(
        "Promise.all([...document.images].map(image => image.decode().catch(() => null)))"
        ".then(() => document.fonts.ready)"
        ".then(() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done))))"
    )
    shot = await browser.send("Page.captureScreenshot", format="png", clip=CLIP)
    return base64.b64decode(shot["data"])


def _resvg(svg: bytes) -> bytes:
    return bytes(resvg_py.svg_to_bytes(svg_string=svg.decode(), dpi=96))


def _same_pixels(first: bytes, second: bytes) -> bool:
    """Identical RGBA pixels, and not a blank picture (a renderer that drew nothing for both
    would otherwise pass)."""
    a = np.asarray(Image.open(io.BytesIO(first)).convert("RGBA"))
    b = np.asarray(Image.open(io.BytesIO(second)).convert("RGBA"))
    drawn = a.shape == b.shape and len(np.unique(a.reshape(-1, 4), axis=0)) > 1
    return drawn and bool(np.array_equal(a, b))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    binary = chromium_or_skip()
    result = asyncio.run(check_everything(binary, tmp_path_factory.mktemp("svg-safety")))
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(result.details())
    print("\n" + result.summary())
    return result


def test_corpus_is_well_formed() -> None:
    """Every class is represented, every payload id names its own file, and every document
    marked as firing raw says in which modes."""
    entries = load_corpus()
    assert len(entries) >= 80
    classes = Counter(entry.klass for entry in entries)
    assert set(classes) == set(CLASSES) and min(classes.values()) >= 8, classes
    for entry in entries:
        assert {id_.split("/")[0] for id_ in entry.ids()} <= {entry.name}, entry.name
        assert entry.fires_raw == bool(entry.fires_raw_in), entry.name
        assert set(entry.fires_raw_in) <= set(MODES), entry.name
    assert len(load_benign()) >= 10


def test_no_stored_svg_runs_or_loads_anything_and_the_raw_corpus_does(report: Report) -> None:
    # The self-test first: without it, "nothing fired" could mean "nothing was seen".
    marked = {e.name: set(e.fires_raw_in) for e in report.entries if e.fires_raw}
    missing = {
        name: sorted(modes - set(report.raw_fired.get(name, {})))
        for name, modes in marked.items()
        if modes - set(report.raw_fired.get(name, {}))
    }
    assert not missing, f"marked fires_raw but did not fire raw: {missing}"
    assert len(marked) >= 0.6 * len(report.entries), "the corpus barely fires raw"
    assert {"binding", "dialog", "leak", "request", "popup"} <= report.raw_detectors

    fired = {
        name: {mode: seen.summary() for mode, seen in modes.items()}
        for name, modes in report.stored_fired.items()
    }
    assert not fired, f"stored documents fired:\n{report.details()}"
    assert not report.stray_leaks, report.stray_leaks


def test_benign_svgs_are_kept_and_draw_the_same(report: Report) -> None:
    refused = [name for name, drawn in report.benign.items() if not drawn.kept]
    assert not refused, f"benign documents refused: {refused}"
    differ = {
        name: [renderer for renderer, same in drawn.same.items() if not same]
        for name, drawn in report.benign.items()
        if not all(drawn.same.values())
    }
    assert not differ, f"benign documents drawn differently after storing: {differ}"
    assert all(len(drawn.same) == 3 for drawn in report.benign.values())
