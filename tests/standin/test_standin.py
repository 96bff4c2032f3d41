"""The HiDream stand-in itself, driven with httpx on loopback."""

from __future__ import annotations

import base64
import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.standin.hidream import API, HiDreamStandIn, Quirks

EN = {"X-accept-language": "en"}


def png(width: int = 12, height: int = 7, colour: str = "red") -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def client(api: HiDreamStandIn, token: str | None = None) -> httpx.Client:
    headers = dict(EN)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=api.url, headers=headers, timeout=5)


def submit(http: httpx.Client, image: str | None = None, **headers: str) -> dict[str, Any]:
    answer = http.post(API, json={"image": image or png(), "mode": "slow"}, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["code"] == 0, answer.text
    return answer.json()["result"]


def poll(http: httpx.Client, task_id: str | int, deadline_s: float = 5) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        answer = http.get(f"{API}/results", params={"task_id": str(task_id)})
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
        subs = answer.json()["result"]["sub_task_results"]
        if subs and all(sub["task_status"] in (1, 3, 4) for sub in subs):
            return subs[0]
        time.sleep(0.03)
    raise AssertionError("task never finished")


def test_submit_poll_redirect_download() -> None:
    with HiDreamStandIn(Quirks(token="secret")) as api, client(api, "secret") as http:
        assert httpx.post(api.url + API, json={"image": png(), "mode": "fast"}).status_code == 401
        result = submit(http)
        assert isinstance(result["task_id"], str) and len(result["sub_task_ids"]) == 1
        sub = poll(http, result["task_id"])
        assert sub["task_status"] == 1 and sub["task_completion"] == 1
        assert sub["sub_task_id"] == result["sub_task_ids"][0]
        assert "/r/" in sub["image"] and "exp=" in sub["image"] and "sig=" in sub["image"]
        hop = http.get(sub["image"])  # no Authorization needed for signed links, but harmless
        assert hop.status_code == 302 and "/cdn/" in hop.headers["location"]
        svg = httpx.get(hop.headers["location"])
        assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
        assert svg.text.startswith('<?xml version="1.0" encoding="UTF-8" standalone="no"?>')
        assert '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"' in svg.text
        assert 'width="12" height="7"' in svg.text and "<rect" in svg.text
        assert httpx.get(sub["image"], follow_redirects=True).status_code == 200
        assert (api.submit_posts, api.tasks_created, api.downloads) == (2, 1, 2)


def test_progress_statuses_and_plain_link() -> None:
    quirks = Quirks(processing_s=0.6, empty_while_pending=False, redirect=False, doctype=False)
    with HiDreamStandIn(quirks) as api, client(api) as http:
        task_id = submit(http, "data:image/png;base64," + png(3, 4))["task_id"]
        seen = []
        while not seen or seen[-1]["task_status"] not in (1, 3, 4):
            answer = http.get(f"{API}/results", params={"task_id": task_id}).json()
            seen.append(answer["result"]["sub_task_results"][0])
            time.sleep(0.02)
        statuses = [sub["task_status"] for sub in seen]
        assert statuses[0] == 0 and 2 in statuses and statuses[-1] == 1
        assert all(sub["image"] == "" for sub in seen[:-1])
        assert all(0 <= sub["task_completion"] <= 1 for sub in seen)
        assert "/cdn/" in seen[-1]["image"]
        svg = httpx.get(seen[-1]["image"])
        assert svg.text.startswith("<svg") and 'width="3" height="4"' in svg.text


def test_integer_ids_and_null_sub_task_ids() -> None:
    quirks = Quirks(integer_ids=True, null_sub_task_ids=True, processing_s=0)
    with HiDreamStandIn(quirks) as api, client(api) as http:
        result = submit(http)
        assert isinstance(result["task_id"], int) and result["sub_task_ids"] is None
        sub = poll(http, str(result["task_id"]))  # ids sent back as strings still match
        assert isinstance(sub["sub_task_id"], int)
        batch = http.post(f"{API}/results/batch", json={"task_id_list": [result["task_id"]]})
        entry = batch.json()["result"][0]
        assert entry["task_id"] == result["task_id"] and entry["sub_task_results"]


def test_empty_sub_task_results_while_pending() -> None:
    with HiDreamStandIn(Quirks(processing_s=30)) as api, client(api) as http:
        task_id = submit(http)["task_id"]
        answer = http.get(f"{API}/results", params={"task_id": task_id}).json()
        assert answer["code"] == 0 and answer["result"] == {
            "task_id": task_id,
            "sub_task_results": [],
        }


def test_expired_and_forged_links_answer_403() -> None:
    with HiDreamStandIn(Quirks(processing_s=0, url_ttl_s=0.01)) as api, client(api) as http:
        link = poll(http, submit(http)["task_id"])["image"]
        time.sleep(1.1)  # links carry whole unix seconds
        expired = httpx.get(link)
        assert expired.status_code == 403 and expired.text.startswith("<?xml")
        assert "AccessDenied" in expired.text
        forged = httpx.get(link.replace("sig=", "sig=0"))
        assert forged.status_code == 403 and "<Error>" in forged.text
        assert (api.expired_downloads, api.downloads) == (2, 0)


def test_lost_submit_is_billed_without_an_answer() -> None:
    with HiDreamStandIn(Quirks(lose_rate=1.0)) as api, client(api) as http:
        for expected in (1, 2):
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
                http.post(API, json={"image": png(), "mode": "fast"})
            assert api.tasks_created == expected
        assert api.submit_posts == 2 and api.max_tasks_per_image() == 2


def test_idempotency_key_is_ignored() -> None:
    with HiDreamStandIn() as api, client(api) as http:
        first = submit(http, **{"Idempotency-Key": "same"})
        second = submit(http, **{"Idempotency-Key": "same"})
        assert first["task_id"] != second["task_id"]
        assert api.tasks_created == 2 and api.max_tasks_per_image() == 2
        assert len(api.tasks_per_image) == 1


def test_batch_with_unknown_id_and_busy_entries() -> None:
    with HiDreamStandIn(Quirks(processing_s=0)) as api, client(api) as http:
        known = submit(http)["task_id"]
        answer = http.post(f"{API}/results/batch", json={"task_id_list": [known, "nope"]})
        first, second = answer.json()["result"]
        assert answer.json()["code"] == 0
        assert first["task_id"] == known and first["sub_task_results"][0]["task_status"] == 1
        assert second["task_id"] == "nope" and second["code"] != 0
        assert second["sub_task_results"] == []
        too_many = http.post(f"{API}/results/batch", json={"task_id_list": ["x"] * 101})
        assert too_many.status_code == 200 and too_many.json()["code"] != 0
    with HiDreamStandIn(Quirks(batch_entry_error_rate=1.0)) as api, client(api) as http:
        known = submit(http)["task_id"]
        entry = http.post(f"{API}/results/batch", json={"task_id_list": [known]}).json()
        assert entry["result"] == [
            {"task_id": known, "code": 1, "message": "busy, query later", "sub_task_results": []}
        ]


def test_business_errors_are_http_200() -> None:
    with HiDreamStandIn() as api, client(api) as http:
        docs_curl_body = '{"image": {image}, "mode": "slow",}'
        bodies: list[Any] = [
            docs_curl_body,
            json.dumps({"mode": "slow"}),
            json.dumps({"image": png(), "mode": "turbo"}),
            json.dumps({"image": "bm90IGFuIGltYWdl", "mode": "fast"}),
            json.dumps({"image": "%%%", "mode": "fast"}),
        ]
        for body in bodies:
            answer = http.post(API, content=body, headers={"Content-Type": "application/json"})
            assert answer.status_code == 200 and answer.json()["code"] != 0, body
            assert answer.json()["message"] and answer.json()["request_id"]
        unknown = http.get(f"{API}/results", params={"task_id": "missing"}).json()
        assert unknown["code"] == 404 and unknown["message"] == "task not found"
        assert api.tasks_created == 0 and api.submit_posts == len(bodies)
        # like the docs' Python example: data=json.dumps(...); a URL is accepted, never fetched
        url_body = json.dumps({"image": "https://example.invalid/a.png", "mode": "slow"})
        answer = http.post(API, content=url_body, headers={"Content-Type": "application/json"})
        assert answer.json()["code"] == 0 and api.tasks_created == 1
        chinese = httpx.get(api.url + f"{API}/results", params={"task_id": "missing"}).json()
        assert chinese["message"] == "任务不存在"


def test_upstream_errors_are_not_json_and_sometimes_billed() -> None:
    with HiDreamStandIn(Quirks(error_rate=1.0, seed=7)) as api, client(api) as http:
        for _ in range(20):
            answer = http.post(API, json={"image": png(), "mode": "fast"})
            assert answer.status_code == 500 and answer.text == "<html>upstream error</html>"
        assert 0 < api.tasks_created < 20
        assert http.get(f"{API}/results", params={"task_id": "x"}).status_code == 500


def test_failed_and_rejected_tasks() -> None:
    with HiDreamStandIn(Quirks(fail_task_rate=1.0, processing_s=0)) as api, client(api) as http:
        sub = poll(http, submit(http)["task_id"])
        assert sub["task_status"] == 3 and sub["description"] and sub["image"] == ""
    with HiDreamStandIn(Quirks(reject_task_rate=1.0, processing_s=0)) as api, client(api) as http:
        sub = poll(http, submit(http)["task_id"])
        assert sub["task_status"] == 4 and sub["image"] == ""


def test_rate_and_concurrency_limits_answer_429() -> None:
    for quirks in (
        Quirks(rate_per_minute=2, processing_s=0),
        Quirks(max_in_flight=2, processing_s=10),
    ):
        with HiDreamStandIn(quirks) as api, client(api) as http:
            submit(http)
            submit(http)
            answer = http.post(API, json={"image": png(), "mode": "fast"})
            assert answer.status_code == 429 and answer.headers["retry-after"] == "1"
            assert answer.json()["code"] != 0
            assert api.tasks_created == 2 and api.submit_posts == 3


def test_same_seed_same_ids() -> None:
    def ids(seed: int) -> list[str]:
        with HiDreamStandIn(Quirks(seed=seed)) as api, client(api) as http:
            return [submit(http)["task_id"] for _ in range(3)]

    assert ids(3) == ids(3) != ids(4)
