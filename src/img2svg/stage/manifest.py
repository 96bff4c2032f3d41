"""Read a manifest (CSV or Parquet, local path or any fsspec URL) as a stream of row chunks.

Catalogs run to millions of rows, so a manifest is never held whole: pyarrow reads it in record
batches of the needed columns only, and rows come out in chunks of bounded size. A manifest that
cannot be read as a whole fails fast with one clear message (ManifestError), checked by
`open_manifest` before anything is spent. A row that is unusable on its own is kept, marked
invalid with its reason, and never submitted.

Row ids must be unique over the whole catalog; `RowIds` remembers the ids seen so far in SQLite
(the run's workspace), not in memory.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from img2svg.run.rows import ManifestRow

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")
_CSV_BLOCK = 1 << 20


class ManifestError(ValueError):
    """The manifest as a whole is unusable; the message says why and what to do."""


@dataclass(frozen=True)
class ManifestSource:
    """A manifest that opened, with the columns the run reads (checked to exist)."""

    path: str
    base: str  # directory (or URL prefix) that relative image paths are resolved against
    image_column: str = "image_url"
    id_column: str | None = None
    version_column: str | None = None
    parquet: bool = False
    order_by: str | None = None  # the column whose order stages the rows (stage.order)
    descending: bool = False

    @property
    def columns(self) -> list[str]:
        wanted = [self.image_column, self.id_column, self.version_column]
        return list(dict.fromkeys(c for c in wanted if c))


@dataclass(frozen=True)
class RawRow:
    """A manifest row as read, before its id is made unique."""

    index: int
    image: str
    raw_id: str | None = None  # the id column's cell, when there is one
    version: str = ""  # the version column's cell (etag, updated_at, checksum...)


@dataclass(frozen=True)
class Manifest:
    """A whole manifest in memory: for small ones and tests; runs stream instead."""

    path: str
    base: str
    rows: list[ManifestRow]


def open_manifest(
    path: str,
    image_column: str = "image_url",
    id_column: str | None = None,
    version_column: str | None = None,
    *,
    order_by: str | None = None,
    descending: bool = False,
) -> ManifestSource:
    """Check that the manifest opens, has the named columns and at least one row."""
    head = _head(path)
    parquet = path.lower().endswith(PARQUET_SUFFIXES) or head == b"PAR1"
    if not head.strip() and not parquet:
        raise ManifestError(f"manifest {path} is empty")
    source = ManifestSource(
        path,
        _parent(path),
        image_column,
        id_column,
        version_column,
        parquet=parquet,
        order_by=order_by,
        descending=descending,
    )
    names = _column_names(source)
    options = (
        (image_column, "--image-column"),
        (id_column, "--id-column"),
        (version_column, "--version-column"),
        (order_by, "--order-by"),
    )
    for column, option in options:
        if column is not None and column not in names:
            available = ", ".join(map(str, names))
            raise ManifestError(
                f"manifest {path} has no column {column!r} (columns: {available}); "
                f"name the right one with {option}"
            )
    if next(iter_rows(source, 1), None) is None:
        raise ManifestError(f"manifest {path} has no rows")
    return source


def iter_rows(source: ManifestSource, chunk_rows: int) -> Iterator[list[RawRow]]:
    """The manifest's rows in order, `chunk_rows` at a time (the last chunk may be shorter)."""
    chunk: list[RawRow] = []
    index = 0
    for batch in column_batches(source, source.columns):
        images = cells(batch, source.image_column)
        ids = cells(batch, source.id_column) if source.id_column else None
        versions = cells(batch, source.version_column) if source.version_column else None
        for i, image in enumerate(images):
            chunk.append(
                RawRow(
                    index,
                    image,
                    ids[i] if ids is not None else None,
                    versions[i] if versions is not None else "",
                )
            )
            index += 1
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def read_manifest(
    path: str,
    image_column: str = "image_url",
    id_column: str | None = None,
    version_column: str | None = None,
) -> Manifest:
    """The whole manifest, ids made unique (small manifests and tests)."""
    source = open_manifest(path, image_column, id_column, version_column)
    ids = RowIds(sqlite3.connect(":memory:"))
    rows = [row for chunk in iter_rows(source, 10_000) for row in ids.assign(chunk)]
    return Manifest(path=path, base=source.base, rows=rows)


class RowIds:
    """Unique, file-name-safe row ids over a whole catalog, remembered in SQLite.

    With an id column, a repeated id makes the later row invalid (and renamed, so that its
    result and SVG do not overwrite the first one); without one, ids are a stable hash of the
    image reference and a repeated image gets `-2`, `-3`... in manifest order.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(
            "CREATE TABLE IF NOT EXISTS row_ids (base TEXT PRIMARY KEY, seen INTEGER NOT NULL, "
            "first_index INTEGER NOT NULL)"
        )

    def assign(self, chunk: list[RawRow]) -> list[ManifestRow]:
        bases = [_base_id(row) for row in chunk]
        known: dict[str, tuple[int, int]] = {}
        unique = list(dict.fromkeys(bases))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            for base, seen, first in self.db.execute(
                f"SELECT base, seen, first_index FROM row_ids WHERE base IN ({marks})", part
            ):
                known[base] = (seen, first)
        out: list[ManifestRow] = []
        for row, base in zip(chunk, bases, strict=True):
            seen, first = known.get(base, (0, row.index))
            known[base] = (seen + 1, first)
            reason = None if row.image else "the image cell is empty"
            if row.raw_id is not None and not row.raw_id:
                reason = reason or "the id cell is empty"
            row_id = base
            if seen:
                if row.raw_id:
                    reason = reason or f"duplicate id {row.raw_id!r} (first at row {first})"
                row_id = f"{base}-{seen + 1}"
            out.append(ManifestRow(row.index, row_id, row.image, reason, row.version))
        self.db.executemany(
            "INSERT INTO row_ids (base, seen, first_index) VALUES (?, ?, ?) "
            "ON CONFLICT(base) DO UPDATE SET seen = excluded.seen",
            [(base, seen, first) for base, (seen, first) in known.items()],
        )
        return out


def _base_id(row: RawRow) -> str:
    if row.raw_id is None:
        return "img-" + hashlib.sha256(row.image.encode()).hexdigest()[:16]
    return safe_id(row.raw_id) if row.raw_id else f"row-{row.index}"


def _head(path: str) -> bytes:
    try:
        with fsspec.open(path, "rb") as handle:
            return handle.read(4)
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, ValueError, ImportError) as exc:
        raise ManifestError(f"manifest {path} cannot be opened: {exc}") from None


def _column_names(source: ManifestSource) -> list[str]:
    with _reading(source), fsspec.open(source.path, "rb") as handle:
        if source.parquet:
            return list(pq.ParquetFile(handle).schema_arrow.names)
        reader = pa_csv.open_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK),
            convert_options=pa_csv.ConvertOptions(column_types={}, strings_can_be_null=False),
        )
        return list(reader.schema.names)


def column_batches(source: ManifestSource, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The manifest's record batches, of these columns only: as typed in Parquet, as text in
    CSV (a CSV column's type would be guessed from its first block alone)."""
    with _reading(source), fsspec.open(source.path, "rb") as handle:
        if source.parquet:
            yield from pq.ParquetFile(handle).iter_batches(batch_size=65_536, columns=columns)
            return
        # One thread: the reader reads the Python file object that closes when this ends, and
        # a read-ahead thread still at it then has been seen to abort the process.
        reader = pa_csv.open_csv(
            handle,
            read_options=pa_csv.ReadOptions(block_size=_CSV_BLOCK, use_threads=False),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() for c in columns},
                include_columns=columns,
                strings_can_be_null=False,
            ),
        )
        try:
            yield from reader
        finally:
            reader.close()


class _reading:
    """Turns what pyarrow and fsspec raise while reading into one ManifestError."""

    def __init__(self, source: ManifestSource) -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb) -> None:
        if exc is None or isinstance(exc, ManifestError | GeneratorExit):
            return
        path = self.source.path
        text = str(exc)
        if "UTF8" in text or "UTF-8" in text or isinstance(exc, UnicodeDecodeError):
            raise ManifestError(f"manifest {path} is not UTF-8 text: re-save it as UTF-8") from None
        if "Empty CSV file" in text:
            raise ManifestError(f"manifest {path} is empty") from None
        if isinstance(exc, pa.ArrowException | OSError | ValueError):
            kind_name = "Parquet" if self.source.parquet else "CSV"
            raise ManifestError(
                f"manifest {path} is not a readable {kind_name} file: {exc}"
            ) from None


def cells(batch: pa.RecordBatch, column: str) -> list[str]:
    """A column of a batch as text, stripped, missing cells empty (how a row reads them)."""
    array = batch.column(batch.schema.get_field_index(column))
    if not pa.types.is_string(array.type) and not pa.types.is_large_string(array.type):
        array = pc.cast(array, pa.string())
    return [_cell(v) for v in array.to_pylist()]


def _cell(value: object) -> str:
    if value is None:
        return ""
    return str(value).strip()


def _parent(path: str) -> str:
    if "://" in path:
        return posixpath.dirname(path.rstrip("/"))
    return posixpath.dirname(path) or "."


def safe_id(raw: str) -> str:
    """A file-name-safe id; unsafe ids get a hash suffix so that two never collide."""
    cleaned = _SAFE_ID.sub("_", raw).strip("._")[:80]
    if cleaned == raw:
        return raw
    return f"{cleaned or 'id'}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
