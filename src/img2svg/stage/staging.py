"""Stage the manifest: stream it into the run's workspace, chunk by chunk, once per run."""

from __future__ import annotations

from img2svg.run.rows import ManifestRow, shard_of
from img2svg.stage.manifest import ManifestError, ManifestSource, RowIds, iter_rows
from img2svg.stage.order import manifest_ranks, remember_ranks
from img2svg.stores.workspace import Staged, Workspace


def stage_rows(
    work: Workspace, source: ManifestSource, chunk_rows: int, shard: tuple[int, int] | None = None
) -> Staged:
    """Stream the manifest in, chunk by chunk, with ids made unique over the catalog.

    `shard` (k, n): keep only the rows of shard k of n (`shard_of`); ids are still assigned
    over every row, so a row has the same id in its shard as in a whole run. With
    `source.order_by`, the chunks follow that column's order (`stage.order`)."""
    ids = RowIds(work.db)
    if source.order_by is not None:
        total, chunks = _stage_in_order(work, source, chunk_rows, shard, ids)
        work.set_meta("order_by", source.order_by)
        work.set_meta("descending", str(int(source.descending)))
    else:
        total, chunks = _stage_in_manifest_order(work, source, chunk_rows, shard, ids)
    work.set_meta("base", source.base)
    return Staged(str(work.path), source.base, total, chunks)


def _stage_in_manifest_order(
    work: Workspace,
    source: ManifestSource,
    chunk_rows: int,
    shard: tuple[int, int] | None,
    ids: RowIds,
) -> tuple[int, int]:
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
    return total, chunks


def _stage_in_order(
    work: Workspace,
    source: ManifestSource,
    chunk_rows: int,
    shard: tuple[int, int] | None,
    ids: RowIds,
) -> tuple[int, int]:
    """Row of rank r goes to chunk r // chunk_rows: the manifest is still read in its order
    (ids are assigned as without an order), each row written straight to its chunk."""
    ranks = manifest_ranks(source, shard)
    sizes: dict[int, int] = {}
    read = 0
    for raw in iter_rows(source, chunk_rows):
        read += len(raw)
        if read > len(ranks):
            raise _changed(source)
        with work.transaction():
            groups: dict[int, list[ManifestRow]] = {}
            ranked: list[tuple[int, int]] = []
            for row in ids.assign(raw):
                rank = int(ranks[row.index])
                if rank >= 0:  # -1: a row of another shard
                    groups.setdefault(rank // chunk_rows, []).append(row)
                    ranked.append((row.index, rank))
            for chunk, rows in groups.items():
                work.insert_rows(chunk, rows)
                sizes[chunk] = sizes.get(chunk, 0) + len(rows)
            remember_ranks(work, ranked)
    if read != len(ranks):
        raise _changed(source)
    with work.transaction() as db:  # insert_rows counted each chunk's last group only
        db.executemany(
            "UPDATE chunks SET rows = ? WHERE chunk = ?", [(n, c) for c, n in sizes.items()]
        )
    return sum(sizes.values()), len(sizes)


def _changed(source: ManifestSource) -> ManifestError:
    return ManifestError(
        f"manifest {source.path} changed while it was read (its --order-by column and its rows "
        "differ in length); run again once it is written"
    )
