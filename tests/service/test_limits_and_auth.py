"""Tokens, per-minute rate limit and in-progress concurrency limit, as the real service has."""

from __future__ import annotations

import httpx

from img2svg.api.codes import ErrorCode
from tests.helpers import RESULTS, SUBMIT, b64, logo_png, wait_terminal

TOKEN = "s3cret-token-value-42"


def test_tokens_are_enforced_and_never_logged(start_service) -> None:
    service = start_service("--token", TOKEN, "--log-level", "debug")
    body = {"image": b64(logo_png(24)), "mode": "fast"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        response = httpx.post(service.url + SUBMIT, json=body, headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == ErrorCode.UNAUTHORIZED
    good = {"Authorization": f"Bearer {TOKEN}", "X-accept-language": "en"}
    with httpx.Client(base_url=service.url, headers=good) as api:
        response = api.post(SUBMIT, json=body)
        assert response.json()["code"] == 0
        task_id = response.json()["result"]["task_id"]
        assert wait_terminal(api, task_id)["task_status"] == 1
        # Another account cannot see the task.
        other = httpx.get(
            service.url + RESULTS,
            params={"task_id": task_id},
            headers={"Authorization": "Bearer x"},
        )
        assert other.status_code == 401
    service.stop()
    log = service.log_path.read_text()
    assert "POST /api-pub" in log  # the log does record requests...
    assert TOKEN not in log  # ...but never the token


def test_any_token_accepted_without_configured_tokens(api: httpx.Client) -> None:
    body = {"image": b64(logo_png(24)), "mode": "fast"}
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert api.post(SUBMIT, json=body, headers=headers).json()["code"] == 0


def test_rate_limit_answers_429_with_retry_after(start_service) -> None:
    service = start_service("--rate-limit", "2")
    body = {"image": b64(logo_png(24)), "mode": "fast"}
    with httpx.Client(base_url=service.url) as api:
        # A refused submission does not eat the quota.
        assert api.post(SUBMIT, json={"image": "!!", "mode": "fast"}).json()["code"] != 0
        assert api.post(SUBMIT, json=body).json()["code"] == 0
        assert api.post(SUBMIT, json=body).json()["code"] == 0
        third = api.post(SUBMIT, json=body)
    assert third.status_code == 429
    assert third.json()["code"] == ErrorCode.RATE_LIMITED
    assert 1 <= int(third.headers["Retry-After"]) <= 60


def test_concurrency_limit_counts_tasks_in_progress(start_service) -> None:
    service = start_service("--max-concurrency", "1", "--latency", "1.5")
    body = {"image": b64(logo_png(24)), "mode": "fast"}
    with httpx.Client(base_url=service.url) as api:
        first = api.post(SUBMIT, json=body).json()
        assert first["code"] == 0
        second = api.post(SUBMIT, json=body)
        assert second.status_code == 429
        assert second.json()["code"] == ErrorCode.CONCURRENCY_LIMITED
        assert int(second.headers["Retry-After"]) >= 1
        wait_terminal(api, first["result"]["task_id"])
        assert api.post(SUBMIT, json=body).json()["code"] == 0
