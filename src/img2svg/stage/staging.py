"""Stage the manifest: stream it into the run's workspace, chunk by chunk, once per run."""

from __future__ import annotations

from img2svg.run.rows import ManifestRow, shard_of
from img2svg.stage.manifest import ManifestSource, RowIds, iter_rows
from img2svg.stores.workspace import Staged, Workspace


def stage_rows(
    work: Workspace, source: ManifestSource, chunk_rows: int, shard: tuple[int, int] | None = None
) -> Staged:
    """Stream the manifest in, chunk by chunk, with ids made unique over the catalog.

    `shard` (k, n): keep only the rows of shard k of n (`shard_of`); ids are still assigned
    over every row, so a row has the same id in its shard as in a whole run."""
    ids = RowIds(work.db)
    total = chunks = 0
    kept: list[ManifestRow] = []

    def flush(rows: list[ManifestRow]) -> None:
        nonlocal total, chunks
        work.insert_rows(chunks, rows)
        total += len(rows)
        chunks += 1

    for raw in iter_rows(source, chunk_rows):
        with work.transaction():
            rows = ids.assign(raw)
            if shard is not None:
                rows = [r for r in rows if shard_of(r.image, shard[1]) == shard[0]]
            kept.extend(rows)
            while len(kept) >= chunk_rows:
                flush(kept[:chunk_rows])
                del kept[:chunk_rows]
    if kept:
        with work.transaction():
            flush(kept)
    work.set_meta("base", source.base)
    return Staged(str(work.path), source.base, total, chunks)
