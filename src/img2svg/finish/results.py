"""Write `results.parquet`, `results.csv` and `failures.csv`, streamed from the workspace.

The tables are written batch by batch in manifest order, so a million-row catalog costs the
memory of one batch; each file appears whole (written aside, then moved into place). The
summary is counted by SQL, not from a DataFrame of the catalog.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from img2svg.finish.report_page import SCORE_COLUMNS, scores_of
from img2svg.finish.summary import STATUS_ORDER, RunSummary
from img2svg.run.rows import RESULT_COLUMNS, RowFlag, RowStatus
from img2svg.stage.images import describe
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import PART_COLUMNS, Workspace

# The pandas dtypes ride along in the file's metadata, so `pd.read_parquet` gives nullable
# integers (Int64) rather than floats for svg_bytes and attempts.
_TYPES: dict[str, tuple[pa.DataType, str, str]] = {  # arrow type, pandas type, numpy type
    "svg_bytes": (pa.int64(), "int64", "Int64"),  # nullable integers, not floats
    "attempts": (pa.int64(), "int64", "Int64"),
    "submitted_at": (pa.float64(), "float64", "float64"),
    "finished_at": (pa.float64(), "float64", "float64"),
    "duration_s": (pa.float64(), "float64", "float64"),
    "reused": (pa.bool_(), "bool", "bool"),
    "ssim": (pa.float64(), "float64", "float64"),
    "psnr": (pa.float64(), "float64", "float64"),  # inf: identical pixels
    "paths": (pa.int64(), "int64", "Int64"),
}
_TEXT = (pa.string(), "unicode", "object")
# The pandas dtypes ride along in the file's metadata (as pandas itself writes them), so
# `pd.read_parquet` gives nullable integers for svg_bytes and attempts; written by hand, so a
# run need not import pandas.
SCHEMA = pa.schema(
    [(name, _TYPES.get(name, _TEXT)[0]) for name in RESULT_COLUMNS],
    metadata={
        b"pandas": json.dumps(
            {
                "index_columns": [],
                "column_indexes": [],
                "columns": [
                    {
                        "name": name,
                        "field_name": name,
                        "pandas_type": _TYPES.get(name, _TEXT)[1],
                        "numpy_type": _TYPES.get(name, _TEXT)[2],
                        "metadata": None,
                    }
                    for name in RESULT_COLUMNS
                ],
            }
        ).encode()
    },
)
assert SCHEMA.names == RESULT_COLUMNS
FAILURE_COLUMNS = ["row_id", "image", "status", "error", "reason_count", "task_id"]

_FAILURES = """
SELECT row_id, image, status, COALESCE(error, '') AS error,
       COUNT(*) OVER (PARTITION BY status, COALESCE(error, '')) AS reason_count, task_id
FROM results WHERE status != 'succeeded'
ORDER BY reason_count DESC, status, error, idx
"""


def write_results(workspace: Workspace, outputs: OutputStore, mode: str) -> RunSummary:
    with (
        outputs.writing("results.parquet") as parquet_path,
        outputs.writing("results.csv") as csv_path,
        pq.ParquetWriter(parquet_path, SCHEMA) as parquet,
        open(csv_path, "w", newline="", encoding="utf-8") as text,
    ):
        writer = csv.writer(text)
        writer.writerow(RESULT_COLUMNS)
        for rows in workspace.results():
            records = [_result(row, outputs, mode) for row in rows]
            parquet.write_table(pa.Table.from_pylist(records, schema=SCHEMA))
            writer.writerows([_csv_cell(r[c]) for c in RESULT_COLUMNS] for r in records)
    with (
        outputs.writing("failures.csv") as failures_path,
        open(failures_path, "w", newline="", encoding="utf-8") as text,
    ):
        writer = csv.writer(text)
        writer.writerow(FAILURE_COLUMNS)
        for rows in _query(workspace, _FAILURES):
            writer.writerows(
                [_csv_cell(describe(row[c]) if c == "image" else row[c]) for c in FAILURE_COLUMNS]
                for row in rows
            )
    return summarize(workspace, outputs)


_PART_TYPES = {
    "idx": pa.int64(),
    "svg_bytes": pa.int64(),
    "attempts": pa.int64(),
    "submitted_at": pa.float64(),
    "finished_at": pa.float64(),
    "reused": pa.int64(),
}
PART_SCHEMA = pa.schema([(c, _PART_TYPES.get(c, pa.string())) for c in PART_COLUMNS])


def export_part(workspace: Workspace, outputs: OutputStore, relative: str) -> int:
    """A shard's results, for the run that split the catalog to merge: one Parquet file in the
    shared output, written aside and moved into place (a half-written part never merges)."""
    count = 0
    with outputs.writing(relative) as path, pq.ParquetWriter(path, PART_SCHEMA) as parquet:
        for rows in workspace.results():
            records = [{c: row[c] for c in PART_COLUMNS} for row in rows]
            parquet.write_table(pa.Table.from_pylist(records, schema=PART_SCHEMA))
            count += len(records)
    return count


def read_part(outputs: OutputStore, relative: str) -> Iterator[dict[str, Any]] | None:
    """The rows of a shard's part file, streamed; None when the shard wrote none."""
    if not outputs.exists(relative):
        return None
    return _part_rows(outputs, relative)


def _part_rows(outputs: OutputStore, relative: str) -> Iterator[dict[str, Any]]:
    with outputs.open(relative) as handle:
        for batch in pq.ParquetFile(handle).iter_batches(batch_size=10_000):
            yield from batch.to_pylist()


def summarize(workspace: Workspace, outputs: OutputStore, top: int = 10) -> RunSummary:
    found = workspace.counts()
    counts = {status: int(found.get(status, 0)) for status in STATUS_ORDER}
    total = sum(found.values())
    failed = total - counts[str(RowStatus.SUCCEEDED)] - counts[str(RowStatus.SKIPPED)]
    top_failures = [
        (row[0], row[1], int(row[2]))
        for rows in _query(
            workspace,
            "SELECT status, COALESCE(error, ''), COUNT(*) FROM results "
            f"WHERE status != 'succeeded' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT {int(top)}",
        )
        for row in rows
    ]
    (reused,) = next(
        _query(workspace, "SELECT COUNT(*) FROM results WHERE reused = 1 AND status = 'succeeded'")
    )[0]
    return RunSummary(
        total=total,
        counts=counts,
        failure_ratio=failed / total if total else 0.0,
        out=outputs.out,
        results_parquet=outputs.location("results.parquet"),
        results_csv=outputs.location("results.csv"),
        failures_csv=outputs.location("failures.csv"),
        top_failures=top_failures,
        reused=int(reused),
        flags=_flag_counts(workspace),
    )


def _flag_counts(workspace: Workspace) -> dict[str, int]:
    """Rows by flag (a row may have several), for the summary: each RowFlag seen, in order."""
    names = [str(flag) for flag in RowFlag]
    sums = ", ".join(
        f"SUM(CASE WHEN ',' || flags || ',' LIKE '%,{name},%' THEN 1 ELSE 0 END)" for name in names
    )
    (found,) = next(_query(workspace, f"SELECT {sums} FROM results"))
    return {name: int(n or 0) for name, n in zip(names, found, strict=True) if n}


def _query(workspace: Workspace, sql: str) -> Iterator[list[sqlite3.Row]]:
    with workspace.results_view():
        cursor = workspace.db.execute(sql)
        while rows := cursor.fetchmany(10_000):
            yield rows


def _result(row: sqlite3.Row, outputs: OutputStore, mode: str) -> dict[str, Any]:
    status = row["status"]
    succeeded = status == str(RowStatus.SUCCEEDED)
    scores = scores_of(row["quality"])
    submitted, finished = row["submitted_at"], row["finished_at"]
    duration = None
    if submitted is not None and finished is not None:
        duration = round(finished - submitted, 3)
    return {
        "row_id": row["row_id"],
        "image": describe(row["image"]),
        "mode": mode,
        "status": status,
        "task_id": row["task_id"],
        "sub_task_id": row["sub_task_id"],
        "svg_url": row["svg_url"],
        "svg_path": outputs.svg_location(row["row_id"]) if succeeded else None,
        "svg_bytes": row["svg_bytes"] if succeeded else None,
        "error": row["error"],
        "attempts": row["attempts"] or 0,
        "submitted_at": submitted,
        "finished_at": finished,
        "duration_s": duration,
        "reused": bool(row["reused"]),
        "flags": row["flags"] or "",
        **{name: scores.get(name) if succeeded else None for name in SCORE_COLUMNS},
    }


# A spreadsheet opening the CSV takes a cell starting with one of these for a formula
# (`=HYPERLINK(...)` in an error text from the API, an image path...).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """None as an empty cell; a text that a spreadsheet would run as a formula behind a `'`.
    Numbers stay numbers, negative ones included."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
