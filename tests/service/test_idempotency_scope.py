"""Idempotency keys are scoped by the caller's token, even when tokens are not checked.

With no tokens configured every caller is account "anonymous"; without the scope, one client's
`Idempotency-Key` would return another client's task (and its result URL).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from img2svg.api.codes import ErrorCode
from tests.helpers import SUBMIT, b64, logo_png

BODY = {"image": b64(logo_png(24)), "mode": "fast"}
KEY = "row-1"


def submit(api: httpx.Client, token: str | None, body: dict = BODY) -> dict:
    headers = {"Idempotency-Key": KEY}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return api.post(SUBMIT, json=body, headers=headers).json()


def task_id(answer: dict) -> str:
    assert answer["code"] == 0, answer
    return answer["result"]["task_id"]


def test_open_service_gives_each_token_its_own_key_space(api: httpx.Client) -> None:
    alice, bob, nobody = (task_id(submit(api, who)) for who in ("alice", "bob", None))
    assert len({alice, bob, nobody}) == 3
    # Each caller still gets its own task back for its own key.
    assert task_id(submit(api, "alice")) == alice
    assert task_id(submit(api, "bob")) == bob
    assert task_id(submit(api, None)) == nobody
    # The same key with another body is a conflict only within one caller's scope.
    other = {**BODY, "mode": "slow"}
    assert submit(api, "alice", other)["code"] == ErrorCode.IDEMPOTENCY_CONFLICT
    assert task_id(submit(api, "carol", other)) not in {alice, bob, nobody}


def test_checked_tokens_keep_separate_key_spaces(start_service, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("token-alice\ntoken-bob\n")
    service = start_service("--token-file", str(tokens))
    with httpx.Client(base_url=service.url, timeout=30) as api:
        alice = task_id(submit(api, "token-alice"))
        bob = task_id(submit(api, "token-bob"))
        assert alice != bob
        assert task_id(submit(api, "token-alice")) == alice
