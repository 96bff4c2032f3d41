"""Image references: an untrusted edge of the pipeline (SVG checks: test_svgcheck.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from pathlib import Path

import httpx
import pytest

from img2svg.pipeline.images import InvalidImageRef, classify, describe, prepare
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


def test_fingerprints_follow_content_or_url_validators(web, monkeypatch) -> None:
    """Content hash where we read the bytes; URL + ETag/Last-Modified where we do not."""
    from img2svg.pipeline import images

    web.add("/a.png", Route(body=b"one", headers={"ETag": '"v1"'}))
    web.add(
        "/b.png", Route(body=b"two", headers={"Last-Modified": "Tue, 24 Nov 2026 10:00:00 GMT"})
    )
    web.add("/c.png", Route(body=b"three"))

    async def fingerprints() -> list[str]:
        async with httpx.AsyncClient() as http:
            return [
                await images.fingerprint(
                    classify(web.url + path, ""), http=http, max_bytes=100, fetch_timeout_s=5
                )
                for path in ("/a.png", "/b.png", "/c.png", "/missing.png")
            ]

    # On loopback the pipeline fetches the bytes itself: the fingerprint is their hash.
    async def content() -> str:
        async with httpx.AsyncClient() as http:
            return await images.fingerprint(
                classify(web.url + "/a.png", ""), http=http, max_bytes=100, fetch_timeout_s=5
            )

    assert asyncio.run(content()) == "sha256:" + hashlib.sha256(b"one").hexdigest()

    # Seen as a public host, the URL is not downloaded: a HEAD request gives its validators.
    async def public(host: str) -> bool:
        return False

    monkeypatch.setattr(images, "is_private_host", public)
    a, b, c, missing = asyncio.run(fingerprints())
    assert a == f'url:{web.url}/a.png#etag="v1"'
    assert b == f"url:{web.url}/b.png#last-modified=Tue, 24 Nov 2026 10:00:00 GMT"
    assert c == f"url:{web.url}/c.png"
    assert missing == f"url:{web.url}/missing.png"
    assert ("GET", "/b.png") not in web.requests and ("HEAD", "/b.png") in web.requests

    # A transient answer must not change the key (that could pay for the image twice).
    web.add("/busy.png", Route(status=503))

    async def busy() -> str:
        async with httpx.AsyncClient() as http:
            ref = classify(web.url + "/busy.png", "")
            return await images.fingerprint(ref, http=http, max_bytes=100, fetch_timeout_s=5)

    with pytest.raises(images.ImageUnavailable, match="HEAD: HTTP 503"):
        asyncio.run(busy())
