"""Score a chunk's new SVGs against their sources (SSIM, PSNR, paths, size) and flag the
suspicious ones. Read-only towards the API: it costs CPU, never a task."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from img2svg.pipeline.chunks import score_chunk as score_chunk_work
from img2svg.pipeline.ledger import Ledger
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.placement import with_password
from img2svg.pipeline.settings import RunSettings
from img2svg.pipeline.workspace import Workspace
from img2svg.quality import Scorer


@task(name="score-chunk", retries=1, cache_policy=NO_CACHE)
async def score_chunk(
    workspace: str, chunk: int, settings: RunSettings, out: str, ledger_location: str
) -> int:
    """One scorer (a pool of worker processes, one per core) per chunk, so memory is that of a
    chunk's scores in flight whatever the catalog's size."""
    with Workspace(workspace) as work, Ledger(with_password(ledger_location)) as ledger:
        if not work.jobs_to_score(chunk):
            return 0
        async with Scorer() as scorer:
            return await score_chunk_work(
                work,
                chunk,
                settings=settings,
                outputs=OutputStore(out),
                ledger=ledger,
                scorer=scorer,
            )
