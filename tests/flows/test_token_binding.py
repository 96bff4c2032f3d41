"""A stored token goes only to its own API: real flow runs, Secret blocks saved in the harness.

Whoever may start a deployment's run may name any `api_url`; a token the run did not receive
together with that URL (a Secret block, or the worker's environment in a deployment's run) is
refused before anything is sent. A token and URL given together by the caller keep working.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pandas as pd
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.client.schemas.objects import FlowRun
from prefect.flow_engine import run_flow

from flows.convert import convert
from img2svg.client import HIDREAM_URL
from img2svg.convert.backend import Credentials, TokenBindingError, run_credentials
from tests.helpers import LoopbackServer, image_manifest

TOKEN = "bound-token-3f9c"


def _block(value: object) -> str:
    name = f"token-{uuid.uuid4().hex[:12]}"
    Secret(value=value).save(name, overwrite=True)
    return name


def _refused(state, token: str, bound: str) -> str:
    """The run failed with one message naming the bound API, never the token."""
    assert state.is_failed()
    with pytest.raises(TokenBindingError) as refused:
        state.result()
    message = str(refused.value)
    assert bound in message and "Nothing was sent" in message
    assert token not in message and token not in (state.message or "")
    return message


def test_a_plain_secret_block_is_bound_to_hidream(tmp_path: Path, web: LoopbackServer) -> None:
    """Today's block format (a bare token) goes to HiDream only: a run naming another host
    fails at once and sends nothing, not even a health check."""
    block = _block(TOKEN)
    manifest = image_manifest(tmp_path, [0, 1])
    state = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out"),
        api_url=web.url,
        token_block=block,
        return_state=True,
    )
    message = _refused(state, TOKEN, HIDREAM_URL)
    assert web.url in message
    assert web.requests == [] and web.posts == []
    assert not (tmp_path / "out" / "results.parquet").exists()


def test_a_json_block_works_against_its_api_and_is_refused_elsewhere(
    start_service, tmp_path: Path, web: LoopbackServer
) -> None:
    service = start_service("--token", TOKEN)
    block = _block(json.dumps({"api_url": service.url, "token": TOKEN}))
    manifest = image_manifest(tmp_path, [0, 1, 2])

    state = convert(
        manifest=str(manifest), out=str(tmp_path / "out"), token_block=block, return_state=True
    )
    assert state.is_completed(), state.message
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["succeeded"] * 3
    assert TOKEN not in results.to_csv()

    # The same API named explicitly (a trailing slash is the same API).
    again = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out2"),
        api_url=service.url + "/",
        token_block=block,
        return_state=True,
    )
    assert again.is_completed(), again.message

    elsewhere = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out3"),
        api_url=web.url,
        token_block=block,
        return_state=True,
    )
    _refused(elsewhere, TOKEN, service.url)
    assert web.requests == []


def test_a_block_saved_as_a_dict_binds_too(tmp_path: Path, web: LoopbackServer) -> None:
    block = _block({"api_url": "https://api.example.test", "token": TOKEN})
    manifest = image_manifest(tmp_path, [0])
    state = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out"),
        api_url=web.url,
        token_block=block,
        return_state=True,
    )
    _refused(state, TOKEN, "https://api.example.test")
    assert web.requests == []


def test_the_environment_token_with_the_callers_api_url_works_as_before(
    start_service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`HIDREAM_API_TOKEN=... img2svg convert --api-url URL`: the caller gave both."""
    service = start_service("--token", TOKEN)
    monkeypatch.setenv("HIDREAM_API_TOKEN", TOKEN)
    monkeypatch.delenv("HIDREAM_API_URL", raising=False)
    manifest = image_manifest(tmp_path, [0, 1])
    state = convert(
        manifest=str(manifest), out=str(tmp_path / "out"), api_url=service.url, return_state=True
    )
    assert state.is_completed(), state.message
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["succeeded"] * 2


async def _deployment_run(name: str, parameters: dict) -> FlowRun:
    async with get_client() as client:
        flow_id = await client.create_flow(convert)
        deployment_id = await client.create_deployment(
            flow_id=flow_id, name=name, entrypoint="flows/convert.py:convert"
        )
        return await client.create_flow_run_from_deployment(deployment_id, parameters=parameters)


def _run_as_deployment(name: str, **parameters):
    """What a worker does with a run started from the UI: the run belongs to a deployment."""
    flow_run = asyncio.run(_deployment_run(name, parameters))
    return run_flow(convert, flow_run=flow_run, parameters=parameters, return_type="state")


def test_in_a_deployments_run_the_environment_token_is_bound_to_its_url(
    start_service, tmp_path: Path, web: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's HIDREAM_API_TOKEN + HIDREAM_API_URL work together; a run's api_url
    pointing elsewhere is refused and nothing is sent there."""
    service = start_service("--token", TOKEN)
    monkeypatch.setenv("HIDREAM_API_TOKEN", TOKEN)
    monkeypatch.setenv("HIDREAM_API_URL", service.url)
    manifest = image_manifest(tmp_path, [0, 1])

    state = _run_as_deployment(
        "token-binding-check", manifest=str(manifest), out=str(tmp_path / "out")
    )
    assert state.is_completed(), state.message
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["succeeded"] * 2

    async def keys() -> set[str]:
        run_id = state.state_details.flow_run_id
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        return {a.key for a in found if a.key}

    assert {
        "img2svg-token-binding-check-m-counts",
        "img2svg-token-binding-check-m-report",
        "img2svg-token-binding-check-m-progress",
    } <= asyncio.run(keys())

    refused = _run_as_deployment(
        "token-binding-check",
        manifest=str(manifest),
        out=str(tmp_path / "out2"),
        api_url=web.url,
    )
    message = _refused(refused, TOKEN, service.url)
    assert "HIDREAM_API_TOKEN" in message
    assert web.requests == []

    # Without HIDREAM_API_URL the worker's token is HiDream's.
    monkeypatch.delenv("HIDREAM_API_URL")
    refused = _run_as_deployment(
        "token-binding-check",
        manifest=str(manifest),
        out=str(tmp_path / "out3"),
        api_url=web.url,
    )
    _refused(refused, TOKEN, HIDREAM_URL)
    assert web.requests == []


# The rules themselves, as plain function calls (no run needed).


def test_binding_rules() -> None:
    none: dict[str, str] = {}
    env = {"HIDREAM_API_TOKEN": "env-token"}
    pair = {**env, "HIDREAM_API_URL": "https://api.example.test/"}
    plain = {"block_name": "b", "block_value": TOKEN}

    # A block: plain string -> HiDream; JSON (string or dict) -> its api_url.
    assert run_credentials(None, **plain, environ=pair) == Credentials(HIDREAM_URL, TOKEN)
    assert run_credentials("https://WWW.hidreamai.com:443/", **plain) == Credentials(
        "https://WWW.hidreamai.com:443", TOKEN
    )
    as_json = json.dumps({"api_url": "http://127.0.0.1:9/", "token": TOKEN})
    assert run_credentials(None, block_name="b", block_value=as_json) == Credentials(
        "http://127.0.0.1:9", TOKEN
    )
    no_url = {"block_name": "b", "block_value": {"token": TOKEN}}
    assert run_credentials(None, **no_url) == Credentials(HIDREAM_URL, TOKEN)
    assert run_credentials(None, block_name="b", block_value="12345") == Credentials(
        HIDREAM_URL, "12345"
    )  # a token that happens to parse as JSON stays a token
    for other in (
        "http://www.hidreamai.com",  # no downgrade to plain HTTP
        "https://www.hidreamai.com:8443",
        "https://www.hidreamai.com@evil.example",  # userinfo: the host is evil.example
        "https://www.hidreamai.com\\@evil.example",
        "https://hidreamai.com",
        "www.hidreamai.com",
    ):
        with pytest.raises(TokenBindingError) as refused:
            run_credentials(other, **plain)
        assert TOKEN not in str(refused.value)
    for broken in ({"api_url": "x"}, {"token": ""}, {"token": TOKEN, "api_url": "ftp://h"}, 7):
        with pytest.raises(TokenBindingError, match="Secret block 'b'"):
            run_credentials(None, block_name="b", block_value=broken)

    # The environment, in a run its caller started: the caller's api_url, as before.
    assert run_credentials("http://127.0.0.1:9", environ=env) == Credentials(
        "http://127.0.0.1:9", "env-token"
    )
    assert run_credentials(None, environ=env) == Credentials(HIDREAM_URL, "env-token")
    assert run_credentials(None, environ=pair) == Credentials(
        "https://api.example.test", "env-token"
    )
    # ... in a deployment's run: bound to HIDREAM_API_URL, else HiDream.
    assert run_credentials(None, environ=pair, deployed=True).url == "https://api.example.test"
    with pytest.raises(TokenBindingError, match=r"https://api\.example\.test"):
        run_credentials("http://127.0.0.1:9", environ=pair, deployed=True)
    with pytest.raises(TokenBindingError, match=r"https://www\.hidreamai\.com"):
        run_credentials("http://127.0.0.1:9", environ=env, deployed=True)

    # No token: any URL, or the embedded service.
    assert run_credentials(None, environ=none, deployed=True) == Credentials(None, None)
    assert run_credentials("http://127.0.0.1:9/", environ=none, deployed=True) == Credentials(
        "http://127.0.0.1:9", None
    )
    assert "env-token" not in repr(run_credentials(None, environ=env))
