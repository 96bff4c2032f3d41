"""`--order-by COLUMN`: which rows go first when `--limit` or the quota cannot take them all.

A run plans its chunks in chunk order and takes `--limit` in that order, so the order is given
where the chunks are made: staging puts the rows into chunks in the column's order (chunk 0
holds the first `chunk_rows` rows of the sorted manifest, and so on), and a chunk is planned in
that order too (`in_staged_order`). Nothing else changes: rows keep their manifest index, so
ids are assigned as without an order and the results are still written in manifest order.

The sort is stable (ties keep the manifest's order, in both directions) and puts missing values
(null, empty) last in both directions. A column of numbers (typed in Parquet, or text whose
every value reads as a number, as in CSV) sorts numerically; a text column holding anything else
sorts as strings (by code point); dates and times in Parquet sort by time.

Memory: the order column, and one rank per row (8 bytes), never the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from img2svg.run.rows import ManifestRow, shard_of
from img2svg.stage.manifest import ManifestError, ManifestSource, cells, column_batches
from img2svg.stores.workspace import Workspace

_TABLE = "CREATE TABLE IF NOT EXISTS row_order (idx INTEGER PRIMARY KEY, rank INTEGER NOT NULL)"


def manifest_ranks(source: ManifestSource, shard: tuple[int, int] | None = None) -> np.ndarray:
    """Each manifest row's place in the requested order (0 first), -1 for a row not in the
    shard; `source.order_by` names the column."""
    column = source.order_by
    assert column is not None
    wanted = [column] if shard is None else list(dict.fromkeys([column, source.image_column]))
    values: list[pa.Array] = []
    kept: list[np.ndarray] = []
    for batch in column_batches(source, wanted):
        values.append(batch.column(batch.schema.get_field_index(column)))
        if shard is not None:
            images = cells(batch, source.image_column)
            kept.append(np.fromiter((shard_of(i, shard[1]) == shard[0] for i in images), bool))
    if not values:
        return np.empty(0, dtype=np.int64)
    sortable = _sortable(pa.chunked_array(values), source)
    positions = None
    if shard is not None:
        mask = np.concatenate(kept)
        positions = np.flatnonzero(mask)
        sortable = sortable.filter(pa.array(mask))
    order = pc.array_sort_indices(
        sortable, order="descending" if source.descending else "ascending", null_placement="at_end"
    ).to_numpy()
    if positions is not None:
        order = positions[order]
    ranks = np.full(sum(len(v) for v in values), -1, dtype=np.int64)
    ranks[order] = np.arange(len(order), dtype=np.int64)
    return ranks


def _sortable(values: pa.ChunkedArray, source: ManifestSource) -> pa.ChunkedArray:
    """The column as values that sort as documented above, missing ones null."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        values, kind = values.cast(kind.value_type), kind.value_type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = pc.utf8_trim_whitespace(values)
        text = pc.if_else(pc.equal(text, ""), pa.scalar(None, text.type), text)
        for number in (pa.int64(), pa.float64()):
            try:
                return _without_nan(pc.cast(text, number))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue  # not every value is a number of this kind
        return text
    if pa.types.is_floating(kind):
        return _without_nan(values)
    if (
        pa.types.is_integer(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_null(kind)
    ):
        return values
    raise ManifestError(
        f"manifest {source.path}: column {source.order_by!r} holds {kind} values, which have no "
        "order; name a column of numbers, text or dates with --order-by"
    )


def _without_nan(values: pa.ChunkedArray) -> pa.ChunkedArray:
    if not pa.types.is_floating(values.type):
        return values
    return pc.if_else(pc.is_nan(values), pa.scalar(None, values.type), values)


def remember_ranks(work: Workspace, ranked: Sequence[tuple[int, int]]) -> None:
    """Within a staging transaction: (manifest index, rank) of staged rows."""
    work.db.execute(_TABLE)
    work.db.executemany("INSERT OR REPLACE INTO row_order (idx, rank) VALUES (?, ?)", ranked)


def in_staged_order(work: Workspace, chunk: int, rows: list[ManifestRow]) -> list[ManifestRow]:
    """A chunk's rows in the requested order (as they are, in manifest order, without one)."""
    if work.meta("order_by") is None:
        return rows
    rank = dict(
        work.db.execute(
            "SELECT o.idx, o.rank FROM rows r JOIN row_order o ON o.idx = r.idx WHERE r.chunk = ?",
            (chunk,),
        ).fetchall()
    )
    return sorted(rows, key=lambda row: rank.get(row.index, -1))
