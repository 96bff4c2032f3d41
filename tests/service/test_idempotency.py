"""Idempotency-Key: a retried POST returns the task it already created."""

from __future__ import annotations

import httpx

from img2svg.api.codes import ErrorCode
from tests.helpers import SUBMIT, b64, logo_png, metric


def test_same_key_same_task(api: httpx.Client) -> None:
    body = {"image": b64(logo_png(24)), "mode": "fast"}
    created = metric(api, "img2svg_tasks_created_total")
    first = api.post(SUBMIT, json=body, headers={"Idempotency-Key": "row-1"}).json()
    again = api.post(SUBMIT, json=body, headers={"Idempotency-Key": "row-1"}).json()
    other = api.post(SUBMIT, json=body, headers={"Idempotency-Key": "row-2"}).json()
    assert first["code"] == again["code"] == other["code"] == 0
    assert first["result"] == again["result"]
    assert other["result"]["task_id"] != first["result"]["task_id"]
    assert metric(api, "img2svg_tasks_created_total") == created + 2


def test_key_reused_for_another_request_is_refused(api: httpx.Client) -> None:
    api.post(
        SUBMIT, json={"image": b64(logo_png(24)), "mode": "fast"}, headers={"Idempotency-Key": "k"}
    )
    clash = api.post(
        SUBMIT, json={"image": b64(logo_png(24)), "mode": "slow"}, headers={"Idempotency-Key": "k"}
    ).json()
    assert clash["code"] == ErrorCode.IDEMPOTENCY_CONFLICT
