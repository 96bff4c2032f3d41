"""Every kind of bad request gets its documented code and message; the service stays up."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from img2svg.api.codes import ErrorCode
from tests.helpers import (
    BATCH,
    RESULTS,
    SUBMIT,
    SYNC,
    LoopbackServer,
    Route,
    b64,
    logo_png,
    png_header_only,
)

SEED_CURL_BODY = """{
        "image": {image},
        "mode": "slow",
     }"""


def _truncated_png() -> bytes:
    data = logo_png(128)
    return data[: len(data) // 2]


def _truncated_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()[:300]


BAD_BODIES: list[tuple[str, bytes | dict, ErrorCode]] = [
    ("seed curl body (placeholder, trailing comma)", SEED_CURL_BODY.encode(), ErrorCode.INVALID_JSON),
    ("trailing comma only", b'{"image": "aGk=", "mode": "slow",}', ErrorCode.INVALID_JSON),
    ("not json", b"image=abc&mode=fast", ErrorCode.INVALID_JSON),
    ("empty body", b"", ErrorCode.INVALID_JSON),
    ("json array", b"[1, 2]", ErrorCode.INVALID_JSON),
    ("not utf-8", b'{"image": "\xff\xfe", "mode": "fast"}', ErrorCode.INVALID_JSON),
    ("missing image", {"mode": "fast"}, ErrorCode.MISSING_FIELD),
    ("missing mode", {"image": "aGk="}, ErrorCode.MISSING_FIELD),
    ("unknown field", {"image": "aGk=", "mode": "fast", "colour": "red"}, ErrorCode.UNKNOWN_FIELD),
    ("bad mode", {"image": "aGk=", "mode": "turbo"}, ErrorCode.INVALID_MODE),
    ("mode not a string", {"image": "aGk=", "mode": 1}, ErrorCode.INVALID_MODE),
    ("image not a string", {"image": 42, "mode": "fast"}, ErrorCode.INVALID_FIELD),
    ("empty image", {"image": "  ", "mode": "fast"}, ErrorCode.INVALID_FIELD),
    ("bad notify_url", {"image": "aGk=", "mode": "fast", "notify_url": "ftp://x"}, ErrorCode.INVALID_FIELD),
    ("not base64", {"image": "this is not base64!", "mode": "fast"}, ErrorCode.INVALID_BASE64),
    ("data uri not base64", {"image": "data:image/png,abc", "mode": "fast"}, ErrorCode.INVALID_BASE64),
    ("non-image bytes", {"image": b64(b"%PDF-1.4 hello" * 20), "mode": "fast"}, ErrorCode.NOT_AN_IMAGE),
    ("truncated png", {"image": b64(_truncated_png()), "mode": "fast"}, ErrorCode.IMAGE_TRUNCATED),
    ("truncated jpeg", {"image": b64(_truncated_jpeg()), "mode": "fast"}, ErrorCode.IMAGE_TRUNCATED),
    ("0x0 header", {"image": b64(png_header_only(0, 0)), "mode": "fast"}, ErrorCode.BAD_DIMENSIONS),
    ("60000x60000 header", {"image": b64(png_header_only(60000, 60000)), "mode": "slow"}, ErrorCode.BAD_DIMENSIONS),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "expected"), [(b, c) for _, b, c in BAD_BODIES], ids=[n for n, _, _ in BAD_BODIES]
)
def test_bad_submissions_get_their_code(
    api: httpx.Client, body: bytes | dict, expected: ErrorCode
) -> None:
    if isinstance(body, dict):
        response = api.post(SUBMIT, json=body)
    else:
        response = api.post(SUBMIT, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == expected.http_status
    answer = response.json()
    assert answer["code"] == int(expected), answer
    assert answer["message"].startswith(expected.message("en"))
    assert answer["request_id"]
    assert api.get("/healthz").status_code == 200


def test_zero_width_header_is_refused(api: httpx.Client) -> None:
    # 0xN is as degenerate as 0x0 and must not reach the engine either.
    answer = api.post(SUBMIT, json={"image": b64(png_header_only(0, 50)), "mode": "fast"}).json()
    assert answer["code"] in (ErrorCode.BAD_DIMENSIONS, ErrorCode.NOT_AN_IMAGE)


def test_huge_base64_is_refused_without_reading_it_all(api: httpx.Client) -> None:
    huge = base64.b64encode(b"\0" * (30 * 1024 * 1024))
    response = api.post(
        SUBMIT,
        content=b'{"image": "' + huge + b'", "mode": "fast"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["code"] == ErrorCode.BODY_TOO_LARGE
    assert api.get("/healthz").status_code == 200


def test_unknown_task_ids(api: httpx.Client) -> None:
    answer = api.get(RESULTS, params={"task_id": "no-such-task"}).json()
    assert answer["code"] == ErrorCode.UNKNOWN_TASK
    assert api.get(RESULTS).json()["code"] == ErrorCode.MISSING_FIELD


def test_bad_batch_queries(api: httpx.Client) -> None:
    assert api.post(BATCH, json={"task_id_list": "abc"}).json()["code"] == ErrorCode.INVALID_FIELD
    assert api.post(BATCH, json={}).json()["code"] == ErrorCode.MISSING_FIELD
    too_many = {"task_id_list": [str(i) for i in range(101)]}
    assert api.post(BATCH, json=too_many).json()["code"] == ErrorCode.TOO_MANY_TASK_IDS


def test_sync_refuses_notify_url_and_bad_images(api: httpx.Client) -> None:
    body = {"image": b64(logo_png(16)), "mode": "fast", "notify_url": "http://x/"}
    assert api.post(SYNC, json=body).json()["code"] == ErrorCode.UNKNOWN_FIELD
    body = {"image": b64(b"not an image at all"), "mode": "fast"}
    assert api.post(SYNC, json=body).json()["code"] == ErrorCode.NOT_AN_IMAGE


def test_bad_image_urls(api: httpx.Client, web: LoopbackServer) -> None:
    missing = web.url + "/missing.png"
    text = web.add("/page.html", Route(body=b"<html>hello</html>", content_type="text/html"))
    cases = {missing: ErrorCode.IMAGE_URL_NOT_FOUND, text: ErrorCode.NOT_AN_IMAGE}
    for url, code in cases.items():
        answer = api.post(SUBMIT, json={"image": url, "mode": "fast"}).json()
        assert answer["code"] == code, (url, answer)
    answer = api.post(SUBMIT, json={"image": "http://127.0.0.1:1/x.png", "mode": "fast"}).json()
    assert answer["code"] == ErrorCode.IMAGE_URL_FAILED


def test_slow_image_url_times_out(start_service, web: LoopbackServer) -> None:
    service = start_service("--allow-private-urls", "--fetch-timeout", "0.5")
    url = web.add("/slow.png", Route(body=logo_png(16), content_type="image/png", delay_s=3))
    answer = httpx.post(service.url + SUBMIT, json={"image": url, "mode": "fast"}).json()
    assert answer["code"] == ErrorCode.IMAGE_URL_TIMEOUT


def test_private_urls_refused_by_default(start_service, web: LoopbackServer) -> None:
    service = start_service()
    url = web.add("/logo.png", Route(body=logo_png(16), content_type="image/png"))
    for target in (url, "http://localhost/x.png", "http://10.0.0.1/x.png", "http://[::1]/x.png"):
        answer = httpx.post(
            service.url + SUBMIT,
            json={"image": target, "mode": "fast"},
            headers={"X-accept-language": "en"},
        ).json()
        assert answer["code"] == ErrorCode.IMAGE_URL_REFUSED, (target, answer)
        assert "private" in answer["message"]
    assert web.requests == []
