"""Local images are read only from the manifest's folder and the folders allowed with
--allow-local-paths, after resolving symlinks and `..`; anything else is invalid and never read."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from img2svg.plan import identify
from img2svg.plan.identify import identify_rows
from img2svg.run.rows import ManifestRow, RowStatus
from img2svg.run.settings import RunSettings
from img2svg.stage import images
from img2svg.stage.images import InvalidImageRef, LocalPaths, classify, prepare


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """catalog/ (the manifest's folder) with an image, a symlink out, and a secret beside it."""
    catalog = tmp_path / "catalog"
    (catalog / "images").mkdir(parents=True)
    (catalog / "images" / "a.png").write_bytes(b"inside")
    (tmp_path / "secret.png").write_bytes(b"outside")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.png").write_bytes(b"allowed")
    os.symlink(tmp_path / "secret.png", catalog / "images" / "link.png")
    os.symlink(tmp_path / "elsewhere", catalog / "images" / "dirlink")
    os.symlink(catalog / "images" / "a.png", catalog / "inner-link.png")  # stays inside
    return tmp_path


def _identify(refs: list[str], base: str, allowed: tuple[str, ...] = ()):
    rows = [ManifestRow(i, f"r{i}", ref) for i, ref in enumerate(refs)]
    settings = RunSettings(allow_local_paths=allowed)
    return asyncio.run(identify_rows(rows, base, settings))


OUTSIDE = [
    "/etc/passwd",
    "../secret.png",
    "images/../../secret.png",
    "file:///etc/hosts",
    "images/link.png",  # a symlink out of the folder
    "images/dirlink/b.png",  # through a symlinked folder
    "local:///etc/hosts",  # fsspec's other name for the local filesystem
    "simplecache::file:///etc/hosts",  # a chained fsspec URL ending on a local file
    "zip://x.png::file:///etc/hosts",
]


def test_files_outside_the_manifests_folder_are_invalid_and_never_read(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_hash, real_read = identify._hash_file, images._read_path
    monkeypatch.setattr(
        identify, "_hash_file", lambda p, st, n: opened.append(p) or real_hash(p, st, n)
    )
    monkeypatch.setattr(images, "_read_path", lambda p, n: opened.append(p) or real_read(p, n))
    found = _identify(
        [*OUTSIDE, "images/a.png", "images/./a.png", "inner-link.png", "images/../images/a.png"],
        str(tree / "catalog"),
    )
    outside, inside = found[: len(OUTSIDE)], found[len(OUTSIDE) :]
    for ref, item in zip(OUTSIDE, outside, strict=True):
        assert item.status is RowStatus.INVALID, ref
        if "::" in ref:  # refused before any path check, allowed folder or not
            assert "chained fsspec URLs are not read" in item.error, item.error
            continue
        assert "outside the manifest's folder" in item.error, item.error
        assert "--allow-local-paths" in item.error
    assert "resolves to " + str(tree / "secret.png") in outside[4].error
    assert [item.status for item in inside] == [None] * 4
    assert len({item.fingerprint for item in inside}) == 1
    assert all("secret" not in path and "/etc/" not in path for path in opened), opened


def test_allowed_folders_are_readable(tree: Path) -> None:
    elsewhere = str(tree / "elsewhere" / "b.png")
    refs = ["../secret.png", "images/dirlink/b.png", elsewhere, "/etc/hosts"]
    found = _identify(refs, str(tree / "catalog"), allowed=(str(tree / "elsewhere"),))
    assert found[0].status is RowStatus.INVALID  # secret.png is in neither folder
    assert str(tree / "elsewhere") in found[0].error
    assert found[1].status is None and found[2].status is None
    assert found[1].fingerprint == found[2].fingerprint
    assert found[3].status is RowStatus.INVALID

    everything = _identify(refs[:1], str(tree / "catalog"), allowed=(str(tree),))
    assert everything[0].status is None


def test_a_manifest_that_is_not_local_reads_no_local_file(tree: Path) -> None:
    (item,) = _identify([str(tree / "secret.png")], "s3://bucket/catalogs")
    assert item.status is RowStatus.INVALID and "the manifest is not local" in item.error


def test_urls_and_remote_paths_are_not_local() -> None:
    local = LocalPaths("/nonexistent/catalog")
    assert classify("https://example.com/a.png", "/m", local).kind == "url"
    assert classify("s3://bucket/k.png", "/m", local).location == "s3://bucket/k.png"
    assert classify("data:image/png;base64,aGk=", "/m", local).kind == "data"
    with pytest.raises(InvalidImageRef, match="outside"):
        classify("../x.png", "/nonexistent/catalog", local)


def test_prepare_checks_again_before_reading(tree: Path) -> None:
    """A reference that reaches `prepare` some other way is refused there too."""
    local = LocalPaths(str(tree / "catalog"))
    inside = classify("images/a.png", str(tree / "catalog"))
    outside = classify("../secret.png", str(tree / "catalog"))  # no check: unconfined

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            ok = await prepare(inside, http=http, max_bytes=100, fetch_timeout_s=1, local=local)
            assert ok.inline
            with pytest.raises(InvalidImageRef, match="outside"):
                await prepare(outside, http=http, max_bytes=100, fetch_timeout_s=1, local=local)

    asyncio.run(go())


def test_the_cli_passes_every_allowed_folder() -> None:
    from img2svg.cli import build_parser

    args = build_parser().parse_args(
        ["convert", "m.csv", "--allow-local-paths", "/data/a", "--allow-local-paths", "b"]
    )
    assert args.allow_local_paths == ["/data/a", "b"]
    assert build_parser().parse_args(["convert", "m.csv"]).allow_local_paths is None


@pytest.mark.parametrize(
    "reference",
    [
        "simplecache::http://169.254.169.254/latest/meta-data/x.png",
        "zip://x.png::http://127.0.0.1:9/a.zip",
        "ftp://127.0.0.1/x.png",
        "sftp://10.0.0.1/x.png",
        "webdav://127.0.0.1/x.png",
    ],
)
def test_references_that_would_reach_a_host_past_the_guard_are_invalid(reference: str) -> None:
    from img2svg.stage.images import InvalidImageRef, classify

    with pytest.raises(InvalidImageRef, match="not read"):
        classify(reference, "/m")
