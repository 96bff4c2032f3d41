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


def test_no_idempotency_bills_every_post_as_hidream_does(start_service) -> None:
    service = start_service("--no-idempotency")
    with httpx.Client(base_url=service.url, timeout=30) as api:
        assert api.get("/healthz").json()["idempotency_keys"] is False
        body = {"image": b64(logo_png(24)), "mode": "fast"}
        key = {"Idempotency-Key": "row-1"}
        first = api.post(SUBMIT, json=body, headers=key).json()
        again = api.post(SUBMIT, json=body, headers=key).json()
        clash = api.post(SUBMIT, json={**body, "mode": "slow"}, headers=key).json()
        assert first["code"] == again["code"] == clash["code"] == 0
        ids = {r["result"]["task_id"] for r in (first, again, clash)}
        assert len(ids) == 3
        assert metric(api, "img2svg_tasks_created_total") == 3


def test_healthz_advertises_deduped_keys_by_default(api: httpx.Client) -> None:
    assert api.get("/healthz").json()["idempotency_keys"] is True
