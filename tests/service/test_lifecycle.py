"""The happy paths of every endpoint, over HTTP against the real service."""

from __future__ import annotations

import io
import json

import defusedxml.ElementTree as ET
import httpx
import numpy as np
import resvg_py
from PIL import Image

from img2svg.service.embedded import EmbeddedService
from tests.helpers import (
    BATCH,
    RESULTS,
    SUBMIT,
    SYNC,
    LoopbackServer,
    Route,
    b64,
    logo_png,
    metric,
    result_of,
    submit,
    wait_terminal,
)


def _assert_svg_of_size(svg: bytes, width: int, height: int) -> None:
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    png = bytes(resvg_py.svg_to_bytes(svg_string=svg.decode()))
    rendered = Image.open(io.BytesIO(png))
    assert rendered.size == (width, height)
    # Not blank: the red/blue/green shapes survived.
    pixels = np.asarray(rendered.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) >= 4


def test_submit_poll_download(api: httpx.Client) -> None:
    task_id = submit(api, b64(logo_png(96)), "slow")
    first = result_of(api, task_id)
    assert first["task_status"] in (0, 1, 2)
    assert 0 <= first["task_completion"] <= 1
    sub = wait_terminal(api, task_id)
    assert sub["task_status"] == 1, sub
    assert sub["task_completion"] == 1
    assert sub["image"].startswith(str(api.base_url))
    svg = httpx.get(sub["image"])
    assert svg.status_code == 200
    assert svg.headers["content-type"] == "image/svg+xml"
    _assert_svg_of_size(svg.content, 96, 96)


def test_data_uri_and_fast_mode(api: httpx.Client) -> None:
    task_id = submit(api, "data:image/png;base64," + b64(logo_png(64)), "fast")
    sub = wait_terminal(api, task_id)
    assert sub["task_status"] == 1
    _assert_svg_of_size(httpx.get(sub["image"]).content, 64, 64)


def test_image_url_is_fetched(api: httpx.Client, web: LoopbackServer) -> None:
    url = web.add("/logo.png", Route(body=logo_png(80), content_type="image/png"))
    sub = wait_terminal(api, submit(api, url, "fast"))
    assert sub["task_status"] == 1
    assert ("GET", "/logo.png") in web.requests


def test_redirects_are_followed_and_checked(api: httpx.Client, web: LoopbackServer) -> None:
    web.add("/logo.png", Route(body=logo_png(48), content_type="image/png"))
    url = web.add("/moved", Route(status=302, headers={"Location": "/logo.png"}))
    assert wait_terminal(api, submit(api, url))["task_status"] == 1


def test_batch_results_in_request_order(api: httpx.Client) -> None:
    ids = [submit(api, b64(logo_png(48, seed=i))) for i in range(3)]
    for task_id in ids:
        wait_terminal(api, task_id)
    body = api.post(BATCH, json={"task_id_list": [ids[2], "nope", ids[0]]}).json()
    assert body["code"] == 0
    entries = body["result"]
    assert [e["task_id"] for e in entries] == [ids[2], "nope", ids[0]]
    assert entries[0]["sub_task_results"][0]["task_status"] == 1
    assert entries[1]["sub_task_results"] == [] and entries[1]["code"] == 1201
    assert entries[2]["sub_task_results"][0]["image"].endswith(".svg")


def test_sync_interface_returns_the_svg(api: httpx.Client) -> None:
    body = api.post(SYNC, json={"image": b64(logo_png(64)), "mode": "fast"}).json()
    assert body["code"] == 0, body
    _assert_svg_of_size(body["result"]["svg"].encode(), 64, 64)


def test_seed_style_raw_json_body_without_content_type(api: httpx.Client) -> None:
    """`requests.post(data=json.dumps(...))` sends text; the service must not care."""
    content = json.dumps({"image": b64(logo_png(32)), "mode": "fast"}).encode()
    response = api.post(SUBMIT, content=content, headers={"Content-Type": "text/plain"})
    assert response.json()["code"] == 0


def test_messages_follow_x_accept_language(api: httpx.Client) -> None:
    zh = api.post(SUBMIT, json={"mode": "fast"}, headers={"X-accept-language": "zh"}).json()
    en = api.post(SUBMIT, json={"mode": "fast"}, headers={"X-accept-language": "en"}).json()
    assert zh["code"] == en["code"] == 1002
    assert "缺少" in zh["message"]
    assert "required" in en["message"]


def test_metrics_health_and_openapi(api: httpx.Client) -> None:
    before = metric(api, "img2svg_submit_requests_total")
    created = metric(api, "img2svg_tasks_created_total")
    task_id = submit(api, b64(logo_png(40)))
    wait_terminal(api, task_id)
    api.post(SUBMIT, json={"image": "x"})  # refused: still a POST received
    assert metric(api, "img2svg_submit_requests_total") == before + 2
    assert metric(api, "img2svg_tasks_created_total") == created + 1
    assert metric(api, "img2svg_tasks_finished_total", '{status="1"}') >= 1
    assert metric(api, "img2svg_conversion_seconds_count", '{mode="fast"}') >= 1
    health = api.get("/healthz").json()
    assert health["status"] == "ok" and health["idempotency_keys"] is True
    spec = api.get("/openapi.json").json()
    assert SUBMIT in spec["paths"] and RESULTS in spec["paths"] and BATCH in spec["paths"]
    schema = spec["paths"][SUBMIT]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"image", "mode"}


def test_svg_urls_of_unknown_or_unfinished_tasks_are_404(
    api: httpx.Client, service: EmbeddedService
) -> None:
    assert api.get("/files/00000000-0000-0000-0000-000000000000.svg").status_code == 404
    assert api.get("/files/..%2Ftasks.sqlite3").status_code == 404
