"""Score a chunk's SVGs against their sources as they arrive, beside its submit and poll steps.

Scores cost CPU, never an API task, and never a row's success: a row that cannot be scored keeps
it, flagged `unscored`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import httpx

from img2svg.finish.report_page import save_thumbnails, scores_json
from img2svg.quality import ScoreError, Scorer, ScoreRefused, flags_for
from img2svg.run.jobs import ImageRef, JobRecord, changes
from img2svg.run.rows import RowFlag, join_flags, split_flags
from img2svg.run.settings import RunSettings
from img2svg.stage.images import LocalPaths, source_bytes
from img2svg.stores.copies import intact_copy
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace

log = logging.getLogger(__name__)


async def score_chunk(
    workspace: Workspace,
    chunk: int,
    *,
    settings: RunSettings,
    outputs: OutputStore,
    ledger: Ledger,
    scorer: Scorer,
    poll_every_s: float = 0.25,
) -> int:
    """Score the chunk's SVGs as they arrive, beside its submit and poll steps, until every job
    of the chunk is final and scored; returns how many were scored.

    The scores go to the workspace (the results), the ledger (a rerun that reuses the SVG
    reuses them) and two small thumbnails to `<out>/.img2svg/thumbs/` (the HTML report). A row
    that cannot be scored keeps its success, flagged `unscored`."""
    local = LocalPaths(workspace.meta("base") or ".", settings.allow_local_paths)
    gate = asyncio.Semaphore(scorer.workers * 2)  # sources read ahead of the workers, bounded
    scored = 0

    async def one(job: JobRecord) -> tuple[str, dict[str, Any]]:
        async with gate:
            return await _score_one(job, http, local, settings, outputs, ledger, scorer)

    async with httpx.AsyncClient(timeout=settings.fetch_timeout_s) as http:
        while True:
            settled = workspace.open_jobs(chunk) == 0  # read before the jobs: none is missed
            jobs = workspace.jobs_to_score(chunk)
            if jobs:
                outcomes = await asyncio.gather(*(one(job) for job in jobs))
                workspace.save_outcomes(outcomes)
                scored += len(outcomes)
            elif settled:
                return scored
            else:
                await asyncio.sleep(poll_every_s)


async def _score_one(
    job: JobRecord,
    http: httpx.AsyncClient,
    local: LocalPaths,
    settings: RunSettings,
    outputs: OutputStore,
    ledger: Ledger,
    scorer: Scorer,
) -> tuple[str, dict[str, Any]]:
    flags = split_flags(job.flags)
    try:
        svg = await asyncio.to_thread(_the_svg, job, outputs, ledger)
        source = await source_bytes(
            ImageRef(job.ref_kind, job.ref_location),
            http=http,
            max_bytes=settings.max_image_bytes,
            fetch_timeout_s=settings.fetch_timeout_s,
            local=local,
        )
        quality = await scorer.score(source, svg)  # the scorer bounds how many run at once
        await asyncio.to_thread(save_thumbnails, outputs, job.key, quality)
        scores = scores_json(quality)
        flags += flags_for(quality)
        await asyncio.to_thread(ledger.scored, job.key, scores, join_flags(flags))
    except Exception as exc:  # a score is a courtesy: never the row's success, never the run
        reason = exc.reason if isinstance(exc, ScoreError) else f"{type(exc).__name__}: {exc}"
        log.warning("not scored: %s: %s", job.lead_row_id, reason)
        flags.append(str(RowFlag.UNSCORED))
        return job.key, changes(flags=join_flags(flags), quality="{}")
    return job.key, changes(flags=join_flags(flags), quality=scores)


def _the_svg(job: JobRecord, outputs: OutputStore, ledger: Ledger) -> bytes:
    """The job's SVG as recorded (its SHA-256): the lead row's file when this run wrote it; for
    an SVG reused from an earlier run, an intact copy wherever the ledger knows one (the lead
    row's own file is written only at the end, and may still hold another image's SVG)."""
    expected = job.svg_sha256
    data = outputs.read_bytes(f"svgs/{job.lead_row_id}.svg")
    if data is not None and (not expected or hashlib.sha256(data).hexdigest() == expected):
        return data
    past = ledger.submission(job.key)
    copy = intact_copy(past, ledger, outputs) if past is not None else None
    found = outputs.read_bytes(copy[0]) if copy is not None else None
    if found is None:
        raise ScoreRefused("no intact copy of the SVG is left in the output")
    return found
