"""Name each row's image by what incremental runs compare, as cheaply as that can be known.

- a local file: its content hash, cached in the ledger by (path, size, mtime) as git's index
  does, so a nightly run over an unchanged catalog stats its files instead of reading them;
- a `data:` URI or a file on another fsspec filesystem: its content hash;
- an http(s) URL: the URL itself, plus the manifest's `--version-column` cell (an etag,
  updated_at or checksum the catalog already carries). No network: the API fetches public URLs
  itself, and a million HEAD requests a night would cost more than the work. `--fingerprint
  head` opts into today's HEAD request (ETag, else Last-Modified) for catalogs without versions.

A local file outside the manifest's folder and the folders of `settings.allow_local_paths` is an
invalid row here, before anything reads it (`images.LocalPaths`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from img2svg.run.rows import ManifestRow, RowStatus
from img2svg.run.settings import RunSettings
from img2svg.stage.images import (
    ImageRef,
    ImageUnavailable,
    InvalidImageRef,
    LocalPaths,
    classify,
    fingerprint_remote,
    url_validators,
)
from img2svg.stores.ledger import Ledger

log = logging.getLogger(__name__)

FingerprintMode = Literal["url", "head"]


@dataclass(frozen=True)
class Identified:
    """A manifest row's image, resolved and fingerprinted, or why that was impossible."""

    index: int
    ref: ImageRef | None = None
    fingerprint: str | None = None
    status: RowStatus | None = None  # INVALID or ERROR when the image could not be identified
    error: str | None = None


async def identify_rows(
    rows: Sequence[ManifestRow],
    base: str,
    settings: RunSettings,
    *,
    ledger: Ledger | None = None,
    mode: FingerprintMode = "url",
) -> list[Identified]:
    """Fingerprint the images of the valid rows; each distinct local file is read at most once,
    and not at all when the ledger knows it unchanged; none outside the allowed folders."""
    local = LocalPaths(base, settings.allow_local_paths)
    refs: dict[int, ImageRef] = {}
    out: dict[int, Identified] = {}
    for row in rows:
        if row.invalid_reason:
            out[row.index] = Identified(row.index)
            continue
        try:
            refs[row.index] = classify(row.image, base, local)
        except InvalidImageRef as exc:
            out[row.index] = Identified(row.index, status=RowStatus.INVALID, error=str(exc))
    files = sorted({r.location for r in refs.values() if r.kind == "path" and _is_local(r)})
    hashes = await asyncio.to_thread(_local_hashes, files, settings.max_image_bytes, ledger)
    versions = {row.index: row.version for row in rows}
    slow: dict[int, ImageRef] = {}
    for index, ref in refs.items():  # no network, no I/O: settled right here
        if ref.kind == "path" and ref.location in hashes:
            found_hash = hashes[ref.location]
            out[index] = (
                _failed(index, found_hash)
                if isinstance(found_hash, Exception)
                else Identified(index, ref, found_hash)
            )
        elif ref.kind == "url" and mode == "url":
            out[index] = Identified(index, ref, _versioned("url:" + ref.location, versions[index]))
        else:
            slow[index] = ref
    if not slow:
        return [out[row.index] for row in rows]
    gate = asyncio.Semaphore(settings.concurrency)
    async with httpx.AsyncClient(timeout=settings.fetch_timeout_s) as http:

        async def one(index: int, ref: ImageRef) -> Identified:
            try:
                async with gate:
                    if ref.kind == "url":
                        identity = await url_validators(
                            http, ref.location, settings.fetch_timeout_s
                        )
                        return Identified(index, ref, _versioned(identity, versions[index]))
                    found = await fingerprint_remote(
                        ref, max_bytes=settings.max_image_bytes, http=http, local=local
                    )
                return Identified(index, ref, found)
            except Exception as exc:  # one odd row must not stop the run
                return _failed(index, exc)

        found = await asyncio.gather(*(one(i, ref) for i, ref in slow.items()))
    out.update((item.index, item) for item in found)
    return [out[row.index] for row in rows]


def _versioned(identity: str, version: str) -> str:
    return f"{identity}#v={version}" if version else identity


def _failed(index: int, exc: Exception) -> Identified:
    if isinstance(exc, InvalidImageRef):
        return Identified(index, status=RowStatus.INVALID, error=str(exc))
    if isinstance(exc, ImageUnavailable):
        return Identified(index, status=RowStatus.ERROR, error=str(exc))
    log.error("identifying row %d failed: %r", index, exc)
    return Identified(index, status=RowStatus.ERROR, error=f"cannot identify the image: {exc!r}")


def _is_local(ref: ImageRef) -> bool:
    return "://" not in ref.location


def _local_hashes(
    paths: list[str], max_bytes: int, ledger: Ledger | None
) -> dict[str, str | Exception]:
    """Content hash of each local file, from the ledger's cache when size and mtime match."""
    stats: dict[str, os.stat_result] = {}
    out: dict[str, str | Exception] = {}
    for path in paths:
        try:
            stats[path] = os.stat(path)
        except FileNotFoundError:
            out[path] = InvalidImageRef(f"no such file: {path}")
        except OSError as exc:
            out[path] = ImageUnavailable(f"cannot read {path}: {exc.strerror or exc}")
    cached = ledger.file_hashes(list(stats)) if ledger is not None else {}
    fresh: list[tuple[str, int, int, str]] = []
    for path, st in stats.items():
        known = cached.get(path)
        if known and known[0] == st.st_size and known[1] == st.st_mtime_ns:
            out[path] = known[2]
            continue
        try:
            digest = _hash_file(path, st, max_bytes)
        except (InvalidImageRef, ImageUnavailable) as exc:
            out[path] = exc
            continue
        out[path] = digest
        fresh.append((path, st.st_size, st.st_mtime_ns, digest))
    if fresh and ledger is not None:
        ledger.remember_file_hashes(fresh)
    return out


def _hash_file(path: str, st: os.stat_result, max_bytes: int) -> str:
    import stat as stat_module

    if stat_module.S_ISDIR(st.st_mode):
        raise InvalidImageRef(f"is a directory, not an image: {path}")
    if st.st_size > max_bytes:
        raise InvalidImageRef(f"{path} is larger than {max_bytes} bytes")
    if st.st_size == 0:
        raise InvalidImageRef(f"{path} is empty")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise ImageUnavailable(f"cannot read {path}: {exc.strerror or exc}") from None
    return "sha256:" + digest.hexdigest()
