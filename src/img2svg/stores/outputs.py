"""Where a run writes: `svgs/<row_id>.svg`, `results.parquet`, `results.csv`, `failures.csv`.

`out` is a local directory or any fsspec URL. Local files are written with `fsutil`: a temporary
name, fsynced, then renamed, so neither a crash nor a power cut leaves a half-written or empty
SVG or table behind a recorded success. They get the usual umask mode (0644 under umask 022).
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from img2svg.fsutil import atomic_path, atomic_write


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
            os.makedirs(os.path.dirname(target), exist_ok=True)
            atomic_write(target, data)
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

    def exists(self, relative: str) -> bool:
        return bool(self.fs.exists(self._path(relative)))

    def open(self, relative: str) -> Any:
        """A binary file object to read `relative` (a part, a table) without loading it whole."""
        return self.fs.open(self._path(relative), "rb")

    def remove_tree(self, relative: str) -> None:
        """Scratch left for other processes (shard parts), once merged."""
        with suppress(FileNotFoundError):
            self.fs.rm(self._path(relative), recursive=True)

    @contextmanager
    def writing(self, relative: str) -> Iterator[str]:
        """A local path to write `relative` to; it appears in `out` whole, only on success."""
        if self.is_local:
            target = self._path(relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with atomic_path(target) as tmp:
                yield tmp
            return
        with tempfile.TemporaryDirectory(prefix="img2svg-out-") as folder:
            local = os.path.join(folder, os.path.basename(relative))
            yield local
            self.fs.put_file(local, self._path(relative))

    def write_svg(self, row_id: str, data: bytes) -> str:
        return self.write_bytes(f"svgs/{row_id}.svg", data)

    def stat(self, relative: str) -> tuple[int | None, int | None]:
        """(size, mtime_ns) of a local file, to know it unchanged later without reading it;
        (None, None) where the store cannot tell cheaply or the file is gone."""
        if not self.is_local:
            return None, None
        try:
            st = os.stat(self._path(relative))
        except OSError:
            return None, None
        return st.st_size, st.st_mtime_ns

    def unchanged(self, relative: str, size: int | None, mtime_ns: int | None) -> bool:
        """Whether a file is as recorded when written (size and mtime, as git's index)."""
        if size is None or mtime_ns is None:
            return False
        return self.stat(relative) == (size, mtime_ns)

    def local_path(self, relative: str) -> str | None:
        return self._path(relative) if self.is_local else None
