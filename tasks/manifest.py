"""Stage the manifest once, streamed into the run's workspace: the chunks the other tasks name."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from img2svg.stage.manifest import ManifestSource
from img2svg.stage.staging import stage_rows
from img2svg.stores.workspace import Staged, Workspace


@task(name="stage-manifest", cache_policy=NO_CACHE)
def stage_manifest(
    source: ManifestSource, workspace: str, chunk_rows: int, shard: tuple[int, int] | None = None
) -> Staged:
    """`shard` (k, n): only the rows of shard k of n."""
    with Workspace(workspace) as work:
        staged = stage_rows(work, source, chunk_rows, shard)
    order = (
        f", ordered by {source.order_by}{' descending' if source.descending else ''}"
        if source.order_by
        else ""
    )
    get_run_logger().info(
        "%d rows from %s, in %d chunks%s", staged.rows, source.path, staged.chunks, order
    )
    return staged
