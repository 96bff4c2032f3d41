"""Image references: an untrusted edge of the pipeline (SVG checks: test_svgcheck.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import httpx
import pytest

from img2svg.run.rows import RowStatus
from img2svg.stage.images import InvalidImageRef, classify, describe, prepare
from tests.helpers import Route


def test_classify() -> None:
    assert classify("https://example.com/a.png", "/m").kind == "url"
    assert classify("a/b.png", "/data/manifests") == classify("/data/manifests/a/b.png", "")
    assert classify("file:///tmp/x%20y.png", "/m").location == "/tmp/x y.png"
    assert classify("s3://bucket/k.png", "/m").location == "s3://bucket/k.png"
    assert classify("data:image/png;base64,aGk=", "/m").kind == "data"
    with pytest.raises(InvalidImageRef):
        classify("data:image/png,rawtext", "/m")
    with pytest.raises(InvalidImageRef):
        classify("", "/m")
    assert describe("data:image/png;base64," + "A" * 1000).endswith("(1022 chars)")


def test_prepare_reads_local_files_inline(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"\x89PNG fake")

    async def go() -> None:
        async with httpx.AsyncClient() as http:
            payload = await prepare(
                classify("x.png", str(tmp_path)), http=http, max_bytes=100, fetch_timeout_s=1
            )
            assert payload.inline
            assert base64.b64decode(payload.image) == b"\x89PNG fake"
            assert payload.fingerprint.startswith("sha256:")
            with pytest.raises(InvalidImageRef, match="no such file"):
                await prepare(
                    classify("y.png", str(tmp_path)), http=http, max_bytes=100, fetch_timeout_s=1
                )
            with pytest.raises(InvalidImageRef, match="larger"):
                await prepare(
                    classify("x.png", str(tmp_path)), http=http, max_bytes=3, fetch_timeout_s=1
                )

    asyncio.run(go())


def _identify(rows, base: str, **kwargs):
    from img2svg.plan.identify import identify_rows
    from img2svg.run.settings import RunSettings

    return asyncio.run(identify_rows(rows, base, RunSettings(), **kwargs))


def test_urls_are_named_without_the_network_unless_asked(web) -> None:
    """The URL and the manifest's version; a HEAD request only with --fingerprint head."""
    from img2svg.run.rows import ManifestRow

    web.add("/a.png", Route(body=b"one", headers={"ETag": '"v1"'}))
    web.add(
        "/b.png", Route(body=b"two", headers={"Last-Modified": "Tue, 24 Nov 2026 10:00:00 GMT"})
    )
    web.add("/c.png", Route(body=b"three"))
    rows = [
        ManifestRow(0, "a", web.url + "/a.png", version="2026-11-01"),
        ManifestRow(1, "b", web.url + "/b.png"),
        ManifestRow(2, "c", web.url + "/c.png"),
        ManifestRow(3, "m", web.url + "/missing.png"),
        ManifestRow(4, "x", "https://unresolvable.invalid/x.png"),
    ]
    plain = [item.fingerprint for item in _identify(rows, "")]
    assert plain == [
        f"url:{web.url}/a.png#v=2026-11-01",
        f"url:{web.url}/b.png",
        f"url:{web.url}/c.png",
        f"url:{web.url}/missing.png",
        "url:https://unresolvable.invalid/x.png",
    ]
    assert web.requests == []  # not one request, not even for the loopback host

    a, b, c, missing = (item.fingerprint for item in _identify(rows[:4], "", mode="head"))
    assert a == f'url:{web.url}/a.png#etag="v1"#v=2026-11-01'
    assert b == f"url:{web.url}/b.png#last-modified=Tue, 24 Nov 2026 10:00:00 GMT"
    assert c == f"url:{web.url}/c.png"
    assert missing == f"url:{web.url}/missing.png"
    assert ("GET", "/b.png") not in web.requests and ("HEAD", "/b.png") in web.requests

    # A transient answer must not change the key (that could pay for the image twice).
    web.add("/busy.png", Route(status=503))
    (busy,) = _identify([ManifestRow(0, "z", web.url + "/busy.png")], "", mode="head")
    assert busy.status is RowStatus.ERROR and "HEAD: HTTP 503" in busy.error


def test_local_files_are_hashed_once_then_known_by_size_and_mtime(tmp_path, monkeypatch):
    from img2svg.plan import identify
    from img2svg.run.rows import ManifestRow
    from img2svg.stores.ledger import Ledger

    (tmp_path / "a.png").write_bytes(b"one")
    rows = [
        ManifestRow(0, "a", "a.png"),
        ManifestRow(1, "b", "a.png"),
        ManifestRow(2, "c", "no.png"),
    ]
    reads: list[str] = []
    real = identify._hash_file
    monkeypatch.setattr(
        identify, "_hash_file", lambda path, st, limit: reads.append(path) or real(path, st, limit)
    )
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        first = _identify(rows, str(tmp_path), ledger=ledger)
        digest = "sha256:" + hashlib.sha256(b"one").hexdigest()
        assert [i.fingerprint for i in first[:2]] == [digest, digest]
        assert first[2].status is RowStatus.INVALID and "no such file" in first[2].error
        assert len(reads) == 1  # two rows, one file, read once
        _identify(rows, str(tmp_path), ledger=ledger)
        assert len(reads) == 1  # unchanged since: not read again
        (tmp_path / "a.png").write_bytes(b"two!")
        changed = _identify(rows[:1], str(tmp_path), ledger=ledger)
        assert changed[0].fingerprint == "sha256:" + hashlib.sha256(b"two!").hexdigest()
        assert len(reads) == 2
