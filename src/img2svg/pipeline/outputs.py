"""Where a run writes: `svgs/<row_id>.svg`, `results.parquet`, `results.csv`, `failures.csv`.

`out` is a local directory or any fsspec URL. Local files are written to a temporary name and
renamed, so a crash never leaves a half-written SVG or table behind.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Sequence

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from img2svg.pipeline.rows import RESULT_COLUMNS, RowState, RowStatus

RESULT_DTYPES = {
    "svg_bytes": "Int64",
    "attempts": "Int64",
    "submitted_at": "float64",
    "finished_at": "float64",
    "duration_s": "float64",
    "reused": "bool",
}


class OutputStore:
    def __init__(self, out: str) -> None:
        self.out = out.rstrip("/") or "/"
        self.fs, self.root = fsspec.core.url_to_fs(self.out)
        if self.is_local and "://" not in self.out:
            # Shown in results, reports and artifacts, read from elsewhere (a worker's relative
            # path means nothing in the Prefect UI): absolute.
            self.out = os.path.abspath(self.out)
        self.fs.makedirs(self._path("svgs"), exist_ok=True)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def location(self, *parts: str) -> str:
        """A path or URL as the user would type it."""
        return posixpath.join(self.out, *parts)

    def svg_location(self, row_id: str) -> str:
        return self.location("svgs", f"{row_id}.svg")

    def write_bytes(self, relative: str, data: bytes) -> str:
        target = self._path(relative)
        if self.is_local:
            directory = os.path.dirname(target)
            os.makedirs(directory, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                os.replace(tmp, target)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        else:
            with self.fs.open(target, "wb") as handle:
                handle.write(data)
        return self.location(relative)

    def read_bytes(self, relative: str) -> bytes | None:
        try:
            with self.fs.open(self._path(relative), "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None

    def write_svg(self, row_id: str, data: bytes) -> str:
        return self.write_bytes(f"svgs/{row_id}.svg", data)

    def write_results(self, rows: Sequence[RowState]) -> pd.DataFrame:
        frame = results_frame(rows)
        self.write_bytes("results.parquet", frame.to_parquet(index=False))
        self.write_bytes("results.csv", frame.to_csv(index=False).encode())
        self.write_bytes("failures.csv", failures_frame(frame).to_csv(index=False).encode())
        return frame


def results_frame(rows: Sequence[RowState]) -> pd.DataFrame:
    ordered = sorted(rows, key=lambda r: r.index)
    frame = pd.DataFrame([r.as_result() for r in ordered], columns=RESULT_COLUMNS)
    return frame.astype(RESULT_DTYPES)


def failures_frame(results: pd.DataFrame) -> pd.DataFrame:
    """Rows that did not succeed, the most common reasons first, then manifest order."""
    failed = results[results["status"] != str(RowStatus.SUCCEEDED)].copy()
    failed["error"] = failed["error"].fillna("")
    counts = failed.groupby(["status", "error"])["row_id"].transform("count")
    failed["reason_count"] = counts
    failed["_order"] = range(len(failed))
    failed = failed.sort_values(
        ["reason_count", "status", "error", "_order"], ascending=[False, True, True, True]
    )
    return failed[["row_id", "image", "status", "error", "reason_count", "task_id"]].reset_index(
        drop=True
    )
