"""Fault injection: off by default, deterministic given a seed, and each kind observable."""

from __future__ import annotations

import contextlib

import httpx

from tests.helpers import SUBMIT, b64, logo_png, metric, submit, wait_terminal


def _outcomes(url: str, n: int) -> list[str]:
    body = {"image": b64(logo_png(16)), "mode": "fast"}
    seen = []
    with httpx.Client(base_url=url, timeout=10) as api:
        for _ in range(n):
            try:
                response = api.post(SUBMIT, json=body)
                seen.append(str(response.status_code))
            except httpx.HTTPError as exc:
                seen.append(type(exc).__name__)
    return seen


def test_request_faults_are_deterministic_by_seed(start_service) -> None:
    args = ("--fault-rate", "0.5", "--seed", "4")  # a seed whose first 16 draws hold every kind
    first = _outcomes(start_service(*args).url, 16)
    second = _outcomes(start_service(*args).url, 16)
    assert first == second
    assert {"500", "503"} & set(first)
    assert "200" in first
    assert any(kind not in ("200", "500", "503") for kind in first)  # dropped connection


def test_dropped_response_still_created_the_task(start_service) -> None:
    service = start_service("--fault-rate", "1", "--seed", "4")
    with httpx.Client(base_url=service.url, timeout=10) as api:
        for _ in range(10):
            with contextlib.suppress(httpx.HTTPError):
                api.post(SUBMIT, json={"image": b64(logo_png(16)), "mode": "fast"})
        faults = {
            kind: metric(api, "img2svg_faults_injected_total", f'{{kind="{kind}"}}')
            for kind in ("http_500", "http_503", "drop", "slow")
        }
        created = metric(api, "img2svg_tasks_created_total")
    assert sum(faults.values()) == 10
    assert faults["drop"] >= 1
    # Dropped and slow requests were processed; 500/503 were not.
    assert created == faults["drop"] + faults["slow"]


def test_fail_and_reject_rates(start_service) -> None:
    failing = start_service("--fail-rate", "1")
    rejecting = start_service("--reject-rate", "1")
    for service, status, words in ((failing, 3, "failed"), (rejecting, 4, "moderation")):
        with httpx.Client(base_url=service.url) as api:
            sub = wait_terminal(api, submit(api, b64(logo_png(16))))
        assert sub["task_status"] == status
        assert sub["image"] == ""
        assert words in sub["description"]


def test_latency_keeps_tasks_processing(start_service) -> None:
    service = start_service("--latency", "1")
    with httpx.Client(base_url=service.url) as api:
        task_id = submit(api, b64(logo_png(16)))
        sub = api.get(
            "/api-pub/gw/v2/image/img2svg/async/results", params={"task_id": task_id}
        ).json()["result"]["sub_task_results"][0]
        assert sub["task_status"] in (0, 2)
        assert wait_terminal(api, task_id)["task_status"] == 1


def test_a_conversion_past_its_time_limit_fails_only_its_task(start_service) -> None:
    import io

    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 255, (1400, 1400, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    service = start_service("--task-timeout", "0.5")
    with httpx.Client(base_url=service.url, headers={"X-accept-language": "en"}) as api:
        slow = submit(api, b64(buf.getvalue()), "slow")
        sub = wait_terminal(api, slow)
        assert sub["task_status"] == 3
        assert "exceeded" in sub["description"] or "time" in sub["description"]
        ok = submit(api, b64(logo_png(32)))
        assert wait_terminal(api, ok)["task_status"] == 1
