"""Score the run's SVGs against their sources (SSIM, PSNR, paths, size) and flag the suspicious
ones, as they arrive: one task for the whole run, beside the chunks' submit and poll tasks,
taking the chunks in order and each until all its jobs are final and scored. One task, so one
pool of scoring processes (a worker per core) and one thread of the run's task runner, however
many chunks there are. It costs CPU, never an API task."""

from __future__ import annotations

import os

from prefect import task
from prefect.cache_policies import NO_CACHE

from img2svg.finish.scoring import score_chunk
from img2svg.quality import Scorer
from img2svg.run.settings import RunSettings
from img2svg.stores.opened import workspace_and_ledger
from img2svg.stores.outputs import OutputStore

SVGS_PER_WORKER = 32


@task(name="score-svgs", cache_policy=NO_CACHE)
async def score_svgs(
    workspace: str, chunks: list[int], settings: RunSettings, out: str, ledger_location: str
) -> int:
    """A failure here costs rows their scores, never their results (the flow waits on it with
    `wait`, not `result`)."""
    outputs = OutputStore(out)
    scored = 0
    with workspace_and_ledger(workspace, ledger_location) as (work, ledger):
        todo = [c for c in chunks if work.open_jobs(c) or work.jobs_to_score(c)]
        if not todo:
            return 0
        # A worker costs a second of CPU to start (it imports scikit-image): a small run, whose
        # conversion shares the same cores, starts one; a big one, one per core.
        workers = min(os.cpu_count() or 1, 1 + work.count_to_score() // SVGS_PER_WORKER)
        async with Scorer(workers) as scorer:
            for chunk in todo:
                scored += await score_chunk(
                    work, chunk, settings=settings, outputs=outputs, ledger=ledger, scorer=scorer
                )
    return scored
