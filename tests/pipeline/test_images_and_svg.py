"""Image references and SVG checks: the untrusted edges of the pipeline."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest

from img2svg.pipeline.images import InvalidImageRef, classify, describe, prepare
from img2svg.pipeline.svgcheck import InvalidSvg, check_svg


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


def test_svg_check() -> None:
    check_svg(b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>')
    check_svg(b"<svg/>")
    bomb = b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa">]><svg>&a;</svg>'
    for bad, words in [
        (b"", "empty"),
        (b"<svg><path></svg>", "well-formed"),
        (b"<html/>", "not <svg>"),
        (bomb, "forbidden"),
    ]:
        with pytest.raises(InvalidSvg, match=words):
            check_svg(bad)
