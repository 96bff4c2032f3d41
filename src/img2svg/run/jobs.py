"""A job as the run's workspace records it: one distinct (image, mode) of the run, written once.

The workspace's `jobs` table is made from this record's fields (`JOB_COLUMNS_SQL`), the plan
creates records, the submit and poll steps read them and hand back what changed (`changes`,
checked against the fields), and scoring reads them: the list of a job's columns lives here
and nowhere else.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from img2svg.run.rows import RowState

RefKind = Literal["url", "path", "data"]


@dataclass(frozen=True)
class ImageRef:
    """How an image is sent to the API: a URL it fetches, or bytes read from a path or data."""

    kind: RefKind
    location: str  # URL, fsspec path/URL, or the data: URI itself


@dataclass
class Job:
    """One distinct (image, mode) on its way: at most one task on the API, whose progress its
    lead row carries; made from a `JobRecord` by the submit and poll steps."""

    key: str
    fingerprint: str
    ref: ImageRef
    idem_key: str
    lead: RowState  # carries the task's progress; the first row holding the image
    token_id: str | None = None  # which token submitted the task (the API may scope tasks by it)
    svg_sha256: str | None = None  # once the SVG is written


@dataclass(frozen=True)
class JobRecord:
    key: str  # the ledger's submission key: (image fingerprint, mode)
    chunk: int  # the chunk that planned it (its first row in the run's order)
    lead_idx: int  # the first manifest row holding the image: it carries the task
    lead_row_id: str
    image: str  # the manifest's image reference (data: URIs abbreviated)
    fingerprint: str
    ref_kind: str  # how the image is sent: url, base64...
    ref_location: str
    action: str = "settled"  # submit, poll, or settled (nothing to do)
    idem_key: str = ""
    token_id: str | None = None  # which token submitted the task (the API may scope by it)
    status: str = "pending"
    error: str | None = None
    task_id: str | None = None
    sub_task_id: str | None = None
    svg_url: str | None = None
    svg_bytes: int | None = None
    svg_sha256: str | None = None
    attempts: int = 0
    submitted_at: float | None = None
    finished_at: float | None = None
    reused: int = 0  # 1: the SVG came from an earlier run, no task of this run's own
    flags: str = ""
    quality: str | None = None  # the scores, as JSON

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        return cls(**{name: row[name] for name in JOB_FIELDS})

    def values(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


JOB_FIELDS = tuple(field.name for field in dataclasses.fields(JobRecord))
_IDENTITY = frozenset({"key", "chunk", "lead_idx", "lead_row_id", "image", "fingerprint"})


def changes(**values: Any) -> dict[str, Any]:
    """A job's moved columns, checked to be columns a job's state may change."""
    unknown = set(values) - set(JOB_FIELDS)
    fixed = set(values) & _IDENTITY
    if unknown or fixed:
        raise ValueError(f"not changeable job columns: {sorted(unknown | fixed)}")
    return values


def _sql_column(field: dataclasses.Field[Any]) -> str:
    kind = str(field.type)
    sql = "INTEGER" if kind.startswith("int") else "REAL" if kind.startswith("float") else "TEXT"
    if field.name == "key":
        return f"{field.name} {sql} PRIMARY KEY"
    if "None" in kind:
        return f"{field.name} {sql}"
    if field.default is dataclasses.MISSING:
        return f"{field.name} {sql} NOT NULL"
    default = f"'{field.default}'" if isinstance(field.default, str) else field.default
    return f"{field.name} {sql} NOT NULL DEFAULT {default}"


JOB_COLUMNS_SQL = ",\n    ".join(_sql_column(field) for field in dataclasses.fields(JobRecord))
"""The `jobs` table's column definitions, made from the record's fields."""
