"""Score a chunk's new SVGs against their sources (SSIM, PSNR, paths, size) and flag the
suspicious ones, as they arrive: the task runs beside the chunk's submit and poll tasks and ends
when every job of the chunk is final and scored. It costs CPU, never an API task."""

from __future__ import annotations

import asyncio
import threading

from prefect import task
from prefect.cache_policies import NO_CACHE

from img2svg.pipeline.chunks import score_chunk as score_chunk_work
from img2svg.pipeline.ledger import Ledger
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.placement import with_password
from img2svg.pipeline.settings import RunSettings
from img2svg.pipeline.workspace import Workspace
from img2svg.quality import Scorer

_ONE_SCORER = threading.Semaphore(1)


@task(name="score-chunk", retries=1, cache_policy=NO_CACHE)
async def score_chunk(
    workspace: str, chunk: int, settings: RunSettings, out: str, ledger_location: str
) -> int:
    """One scorer (a pool of worker processes, one per core) at a time in this process: a
    chunk's scoring waits for the previous chunk's to end, so memory stays that of one pool."""
    with Workspace(workspace) as work, Ledger(with_password(ledger_location)) as ledger:
        if not work.open_jobs(chunk) and not work.jobs_to_score(chunk):
            return 0
        await asyncio.to_thread(_ONE_SCORER.acquire)
        try:
            async with Scorer() as scorer:
                return await score_chunk_work(
                    work,
                    chunk,
                    settings=settings,
                    outputs=OutputStore(out),
                    ledger=ledger,
                    scorer=scorer,
                )
        finally:
            _ONE_SCORER.release()
