"""Turn a manifest's image reference into what the API is sent.

Public http(s) URLs are sent as URLs: the service fetches them. Everything the service could not
reach is read here and sent inline as base64: local paths (relative to the manifest), `file://`
and other fsspec URLs, and http(s) URLs on loopback or private networks. `data:` URIs pass as
they are. What incremental runs compare is decided in `identify`.

A manifest is untrusted: a local file is read only from the manifest's own folder, or from a
folder allowed with `--allow-local-paths` (`LocalPaths`), after resolving symlinks and `..`.
Anything else (`/etc/passwd`, `../secret.png`, `file:///etc/hosts`, a symlink out) is an invalid
row, never opened.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import fsspec
import httpx
from fsspec.core import split_protocol

from img2svg.net.fetch import FetchError, FetchLimits, fetch_url
from img2svg.net.guard import URLRefused, is_private_host
from img2svg.run.jobs import ImageRef

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class InvalidImageRef(ValueError):
    """The reference cannot be turned into an image to send; the row is invalid."""


class ImageUnavailable(ValueError):
    """The reference is well-formed but its bytes could not be read or fetched right now."""


@dataclass(frozen=True)
class Payload:
    image: str  # what goes into the API's `image` field
    fingerprint: str  # sha256 of the bytes when we saw them, else "url:<url>"
    inline: bool


# fsspec protocols that read this machine's files: the local filesystem, and the wrappers
# (caches, archives) whose target defaults to it.
_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
_WRAPPERS = frozenset(
    {"simplecache", "filecache", "blockcache", "cached", "dir", "zip", "tar", "libarchive"}
)


def local_target(location: str) -> str | None:
    """The file of this machine that a path-kind location reads, or None when it reads none.

    A chained fsspec URL (`zip://a.png::file:///data/a.zip`) reads through its last element."""
    protocol, path = split_protocol(location.rsplit("::", 1)[-1])
    protocol = (protocol or "").lower()
    if protocol in _LOCAL_PROTOCOLS or (protocol in _WRAPPERS and "::" not in location):
        return path
    return None


class LocalPaths:
    """The folders local images may be read from: the manifest's own folder (when the manifest
    is local) and the folders allowed with `--allow-local-paths`, compared after resolving
    symlinks and `..` (relative folders are relative to the working directory)."""

    def __init__(self, base: str, allowed: Sequence[str] = ()) -> None:
        folder = local_target(base) if base else None
        self.manifest_folder = os.path.realpath(folder) if folder is not None else None
        self.allowed = tuple(os.path.realpath(path) for path in allowed)
        self.roots = ((self.manifest_folder,) if self.manifest_folder else ()) + self.allowed
        self._folders: dict[str, str] = {}  # realpath of each folder seen: one per catalog dir

    def check(self, location: str, reference: str) -> None:
        """Raise `InvalidImageRef` unless the file `location` reads is under one of the roots."""
        path = local_target(location)
        if path is None:
            return
        real = self._resolve(path)
        if any(_within(real, root) for root in self.roots):
            return
        shown = describe(reference) + (f" (resolves to {real})" if real != path else "")
        allowed = f" and {', '.join(self.allowed)}" if self.allowed else ""
        if self.manifest_folder is None:
            where = "a local file, and the manifest is not local"
            if allowed:
                where += f": local images are read only in {', '.join(self.allowed)}"
        else:
            where = f"outside the manifest's folder {self.manifest_folder}{allowed}"
        raise InvalidImageRef(
            f"{shown} is {where}; not read (to read local images from another folder, allow it "
            "with --allow-local-paths DIR)"
        )

    def _resolve(self, path: str) -> str:
        """`os.path.realpath(path)`, resolving each folder once (a catalog has many files per
        folder). `..` is resolved after symlinks, as the kernel does, never textually first."""
        absolute = path if os.path.isabs(path) else os.path.join(os.getcwd(), path)
        folder, name = os.path.split(absolute)
        if name in ("", ".", ".."):
            return os.path.realpath(absolute)
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        candidate = os.path.join(real_folder, name)
        return os.path.realpath(candidate) if os.path.islink(candidate) else candidate


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def classify(reference: str, base: str, local: LocalPaths | None = None) -> ImageRef:
    """What kind of reference a manifest cell is, and where it points; with `local`, a
    reference to a file outside its folders is refused (without touching the file)."""
    ref = _classify(reference, base)
    if local is not None and ref.kind == "path":
        local.check(ref.location, reference)
    return ref


def _classify(reference: str, base: str) -> ImageRef:
    if not reference:
        raise InvalidImageRef("the image cell is empty")
    lowered = reference[:16].lower()
    if lowered.startswith(("http://", "https://")):
        try:
            parts = urlsplit(reference)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise InvalidImageRef(f"malformed URL ({exc}): {describe(reference)}") from None
        if not parts.hostname:
            raise InvalidImageRef(f"URL without a host: {describe(reference)}")
        return ImageRef("url", reference)
    if lowered.startswith("data:"):
        header, sep, _ = reference.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise InvalidImageRef("data: URI is not base64-encoded")
        return ImageRef("data", reference)
    if lowered.startswith("file://"):
        path = unquote(urlsplit(reference).path)
        if not path:
            raise InvalidImageRef(f"file URL without a path: {reference}")
        return ImageRef("path", path)
    if "::" in reference:  # fsspec chaining could reach any host past the network guard
        raise InvalidImageRef(f"chained fsspec URLs are not read: {describe(reference)}")
    scheme = _SCHEME.match(reference)
    if scheme:
        name = scheme.group(0)[:-3].lower()
        if name not in OBJECT_STORES:
            raise InvalidImageRef(
                f"{name}:// references are not read (http(s) URLs go to the API; local files "
                f"and object stores {', '.join(sorted(OBJECT_STORES))} are read): "
                f"{describe(reference)}"
            )
        return ImageRef("path", reference)  # an object store (s3://...)
    if reference.startswith("/"):
        return ImageRef("path", reference)
    return ImageRef("path", posixpath.join(base, reference) if base else reference)


# fsspec protocols whose reads go to the catalog's own storage, not to an address the manifest
# chooses: ftp://, sftp://, webdav://... would reach hosts the private-network guard never saw.
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "local"})


def describe(reference: str) -> str:
    """The image as shown in results: data: URIs are abbreviated, not copied whole."""
    if reference[:5].lower() == "data:":
        header = reference.partition(",")[0]
        return f"{header},… ({len(reference)} chars)"
    return reference


async def prepare(
    ref: ImageRef,
    *,
    http: httpx.AsyncClient,
    max_bytes: int,
    fetch_timeout_s: float,
    local: LocalPaths | None = None,
) -> Payload:
    """The image as the API is sent it; with `local`, a file outside its folders is refused
    again right before it would be read."""
    if ref.kind == "data":
        payload = ref.location.partition(",")[2]
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidImageRef("data: URI holds invalid base64") from None
        return Payload(ref.location, _digest(data), inline=True)
    if ref.kind == "path":
        if local is not None:
            local.check(ref.location, ref.location)
        data = _read_path(ref.location, max_bytes)
        return Payload(base64.b64encode(data).decode(), _digest(data), inline=True)
    if not await _on_private_network(ref.location):
        return Payload(ref.location, "url:" + ref.location, inline=False)
    limits = FetchLimits(max_bytes=max_bytes, timeout_s=fetch_timeout_s, allow_private=True)
    try:
        fetched = await fetch_url(http, ref.location, limits)
    except FetchError as exc:
        raise ImageUnavailable(f"cannot fetch {ref.location}: {exc.reason}") from None
    return Payload(
        base64.b64encode(fetched.content).decode(), _digest(fetched.content), inline=True
    )


async def source_bytes(
    ref: ImageRef,
    *,
    http: httpx.AsyncClient,
    max_bytes: int,
    fetch_timeout_s: float,
    local: LocalPaths | None = None,
) -> bytes:
    """The image itself, to score its SVG against: read, or fetched within the same bounds and
    through the same private-network guard as any other fetch of an untrusted URL (a URL that
    names a private host is fetched as `prepare` would, having been named so by the manifest;
    a public one may not redirect into a private network)."""
    if ref.kind == "url":
        private = await _on_private_network(ref.location)
        limits = FetchLimits(max_bytes=max_bytes, timeout_s=fetch_timeout_s, allow_private=private)
        try:
            return (await fetch_url(http, ref.location, limits)).content
        except FetchError as exc:
            raise ImageUnavailable(f"cannot fetch {ref.location}: {exc.reason}") from None
    payload = await prepare(
        ref, http=http, max_bytes=max_bytes, fetch_timeout_s=fetch_timeout_s, local=local
    )
    text = payload.image.partition(",")[2] if ref.kind == "data" else payload.image
    return base64.b64decode(text)


async def fingerprint_remote(
    ref: ImageRef, *, max_bytes: int, http: httpx.AsyncClient, local: LocalPaths | None = None
) -> str:
    """Content hash of a `data:` URI or a file on another fsspec filesystem (local files are
    hashed, and cached, by `identify`; URLs are named by the URL)."""
    payload = await prepare(ref, http=http, max_bytes=max_bytes, fetch_timeout_s=30.0, local=local)
    return payload.fingerprint


async def _on_private_network(url: str) -> bool:
    """Whether a remote service could not reach the URL, so the pipeline must fetch it. A host
    this machine cannot resolve is left to the service, which fetches public URLs itself."""
    try:
        return await is_private_host(urlsplit(url).hostname or "")
    except URLRefused:
        return False
    except ValueError as exc:  # e.g. a host name IDNA cannot encode
        raise InvalidImageRef(f"malformed host in {url}: {exc}") from None


async def url_validators(http: httpx.AsyncClient, url: str, timeout_s: float) -> str:
    identity = "url:" + url
    try:
        response = await http.head(url, timeout=timeout_s, follow_redirects=False)
    except httpx.HTTPError as exc:
        problem = type(exc).__name__
    else:
        status = response.status_code
        problem = f"HTTP {status}" if status == 429 or status >= 500 else None
    if problem:
        # Guessing an identity now could miss this image's entry in the ledger and pay for it
        # twice; the row waits for the next run instead.
        raise ImageUnavailable(f"cannot check {url} for changes (HEAD: {problem})")
    if response.status_code >= 400:
        return identity  # no HEAD support, or gone: the service will say; the URL is the key
    if etag := response.headers.get("etag"):
        return f"{identity}#etag={etag}"
    if modified := response.headers.get("last-modified"):
        return f"{identity}#last-modified={modified}"
    return identity


def _read_path(path: str, max_bytes: int) -> bytes:
    try:
        with fsspec.open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise InvalidImageRef(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InvalidImageRef(f"is a directory, not an image: {path}") from None
    except (OSError, ValueError, ImportError) as exc:
        raise ImageUnavailable(f"cannot read {path}: {exc}") from None
    if len(data) > max_bytes:
        raise InvalidImageRef(f"{path} is larger than {max_bytes} bytes")
    if not data:
        raise InvalidImageRef(f"{path} is empty")
    return data


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
