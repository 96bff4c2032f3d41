"""Read a manifest (CSV or Parquet, local path or any fsspec URL) into rows with stable ids.

A manifest that cannot be read as a whole fails fast with one clear message (ManifestError). A
row that is unusable on its own is kept, marked invalid with its reason, and never submitted.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass

import fsspec
import pandas as pd
import pyarrow as pa

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_SAFE_ID = re.compile(r"[^A-Za-z0-9._-]+")


class ManifestError(ValueError):
    """The manifest as a whole is unusable; the message says why and what to do."""


@dataclass(frozen=True)
class ManifestRow:
    index: int
    row_id: str
    image: str
    invalid_reason: str | None = None


@dataclass(frozen=True)
class Manifest:
    path: str
    base: str  # directory (or URL prefix) that relative image paths are resolved against
    rows: list[ManifestRow]


def read_manifest(
    path: str, image_column: str = "image_url", id_column: str | None = None
) -> Manifest:
    frame = _read_frame(path)
    if frame.shape[1] == 0 or len(frame) == 0:
        raise ManifestError(f"manifest {path} has no rows")
    for column, option in ((image_column, "--image-column"), (id_column, "--id-column")):
        if column is not None and column not in frame.columns:
            available = ", ".join(map(str, frame.columns))
            raise ManifestError(
                f"manifest {path} has no column {column!r} (columns: {available}); "
                f"name the right one with {option}"
            )
    images = [_cell(v) for v in frame[image_column].tolist()]
    ids = [_cell(v) for v in frame[id_column].tolist()] if id_column else None
    return Manifest(path=path, base=_parent(path), rows=_rows(images, ids))


def _read_frame(path: str) -> pd.DataFrame:
    try:
        with fsspec.open(path, "rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (OSError, ValueError, ImportError) as exc:
        raise ManifestError(f"manifest {path} cannot be opened: {exc}") from None
    try:
        if path.lower().endswith(PARQUET_SUFFIXES) or head == b"PAR1":
            return pd.read_parquet(path)
        return pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            encoding_errors="strict",
            skip_blank_lines=True,
        )
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"manifest {path} is not UTF-8 text (byte {exc.start}): re-save it as UTF-8"
        ) from None
    except pd.errors.EmptyDataError:
        raise ManifestError(f"manifest {path} is empty") from None
    except (pd.errors.ParserError, pa.ArrowException, ValueError, OSError) as exc:
        kind = "Parquet" if head == b"PAR1" else "CSV"
        raise ManifestError(f"manifest {path} is not a readable {kind} file: {exc}") from None


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from Parquet nulls
        return ""
    return str(value).strip()


def _parent(path: str) -> str:
    if "://" in path:
        return posixpath.dirname(path.rstrip("/"))
    return posixpath.dirname(path) or "."


def _rows(images: list[str], ids: list[str] | None) -> list[ManifestRow]:
    rows: list[ManifestRow] = []
    seen: dict[str, int] = {}
    for index, image in enumerate(images):
        reason = None if image else "the image cell is empty"
        if ids is not None:
            raw_id = ids[index]
            row_id = safe_id(raw_id) if raw_id else f"row-{index}"
            if not raw_id:
                reason = reason or "the id cell is empty"
        else:
            row_id = "img-" + hashlib.sha256(image.encode()).hexdigest()[:16]
        occurrence = seen.get(row_id, 0)
        seen[row_id] = occurrence + 1
        if occurrence:
            if ids is not None and raw_id:
                reason = reason or f"duplicate id {raw_id!r} (first at row {_first(rows, row_id)})"
            row_id = f"{row_id}-{occurrence + 1}"
        rows.append(ManifestRow(index=index, row_id=row_id, image=image, invalid_reason=reason))
    return rows


def _first(rows: list[ManifestRow], row_id: str) -> int:
    return next(r.index for r in rows if r.row_id == row_id)


def safe_id(raw: str) -> str:
    """A file-name-safe id; unsafe ids get a hash suffix so that two never collide."""
    cleaned = _SAFE_ID.sub("_", raw).strip("._")[:80]
    if cleaned == raw:
        return raw
    return f"{cleaned or 'id'}-{hashlib.sha256(raw.encode()).hexdigest()[:8]}"
