"""The HiDream Credentials block (`img2svg.blocks`): registered with `prefect block register`,
named in `token_block` like a Secret block, its token bound to its own `api_url`. Real flow runs
against the Prefect test harness and a local `img2svg serve` that accepts one token only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.exceptions import ObjectNotFound
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL

from flows.convert import convert
from img2svg.blocks import HiDreamCredentials, load_token_block
from img2svg.convert.backend import TokenBindingError
from tests.helpers import LoopbackServer, image_manifest

REPO = Path(__file__).resolve().parents[2]
TOKEN = "credentials-token-7d21"
SLUG = "hidream-credentials"


def _name() -> str:
    return f"creds-{uuid.uuid4().hex[:12]}"


def _credentials(api_url: str, token: str = TOKEN) -> str:
    name = _name()
    HiDreamCredentials(api_url=api_url, token=token).save(name, overwrite=True)
    return name


def test_prefect_block_register_shows_the_form_in_the_ui(tmp_path: Path) -> None:
    """`prefect block register -m img2svg.blocks` against the harness's API creates the block
    type (only this one), with its description and a secret token field."""

    async def drop_type() -> None:  # registered by an earlier test's save, if any
        async with get_client() as client:
            try:
                found = await client.read_block_type_by_slug(SLUG)
            except ObjectNotFound:
                return
            await client.delete_block_type(found.id)

    asyncio.run(drop_type())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "HIDREAM_"))}
    env |= {
        "PREFECT_API_URL": PREFECT_API_URL.value(),  # the test harness's API
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "COLUMNS": "200",
    }
    command = [sys.executable, "-m", "prefect", "block", "register", "-m", "img2svg.blocks"]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HiDream Credentials" in done.stdout and "Secret" not in done.stdout, done.stdout

    async def registered():
        async with get_client() as client:
            block_type = await client.read_block_type_by_slug(SLUG)
            schemas = await client.read_block_schemas()
        return block_type, [s for s in schemas if s.block_type_id == block_type.id]

    block_type, schemas = asyncio.run(registered())
    assert block_type.name == "HiDream Credentials"
    assert "sent to that API only" in (block_type.description or "")
    assert block_type.logo_url is None
    (schema,) = schemas
    properties = schema.fields["properties"]
    assert set(properties) == {"api_url", "token"}
    assert all(field.get("description") for field in properties.values())
    assert schema.fields["secret_fields"] == ["token"]
    assert schema.fields["required"] == ["token"]


def test_the_token_never_shows_in_the_blocks_repr() -> None:
    block = HiDreamCredentials(api_url="http://127.0.0.1:9", token=TOKEN)
    for shown in (repr(block), str(block), block.model_dump_json(), str(block.model_dump())):
        assert TOKEN not in shown and "127.0.0.1:9" in shown
    with pytest.raises(ValueError, match="http"):
        HiDreamCredentials(api_url="ftp://example.test", token=TOKEN)
    with pytest.raises(ValueError):
        HiDreamCredentials(token="")


def test_a_credentials_block_runs_against_its_api_and_is_refused_elsewhere(
    start_service, tmp_path: Path, web: LoopbackServer
) -> None:
    service = start_service("--token", TOKEN)  # accepts this token only
    block = _credentials(service.url)
    manifest = image_manifest(tmp_path, [0, 1])

    # By its bare name, as `--token-block NAME` gives it; nothing but the block says where.
    state = convert(
        manifest=str(manifest), out=str(tmp_path / "out"), token_block=block, return_state=True
    )
    assert state.is_completed(), state.message
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["succeeded"] * 2
    assert TOKEN not in results.to_csv()
    _no_token_in_the_runs_logs_or_artifacts(state.state_details.flow_run_id)

    # Another api_url: refused before anything is sent, by the block's type-slug name too.
    for named in (block, f"{SLUG}/{block}"):
        refused = convert(
            manifest=str(manifest),
            out=str(tmp_path / "elsewhere"),
            api_url=web.url,
            token_block=named,
            return_state=True,
        )
        assert refused.is_failed()
        with pytest.raises(TokenBindingError) as error:
            refused.result()
        message = str(error.value)
        assert f"HiDream Credentials block {named!r}" in message, message
        assert service.url in message and web.url in message and "Nothing was sent" in message
        assert TOKEN not in message and TOKEN not in (refused.message or "")
        assert TOKEN not in repr(error.value)
    assert web.requests == [] and web.posts == []
    assert not (tmp_path / "elsewhere" / "results.parquet").exists()


def _no_token_in_the_runs_logs_or_artifacts(run_id) -> None:
    APILogWorker.drain_all(timeout=5)

    async def texts() -> list[str]:
        async with get_client() as client:
            logs = await client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])), limit=200
            )
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
            flow_run = await client.read_flow_run(run_id)
        assert logs and artifacts
        return [
            *(log.message for log in logs),
            *(json.dumps(a.data, default=str) for a in artifacts),
            flow_run.model_dump_json(),
        ]

    assert not [text for text in asyncio.run(texts()) if TOKEN in text]


def test_a_secret_block_still_works(start_service, tmp_path: Path) -> None:
    """A JSON Secret block, named bare or as secret/NAME, is bound to its api_url as before."""
    service = start_service("--token", TOKEN)
    name = _name()
    Secret(value=json.dumps({"api_url": service.url, "token": TOKEN})).save(name, overwrite=True)
    manifest = image_manifest(tmp_path, [0])
    state = convert(
        manifest=str(manifest), out=str(tmp_path / "out"), token_block=name, return_state=True
    )
    assert state.is_completed(), state.message
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["succeeded"]
    assert load_token_block(f"secret/{name}")[0] == "Secret"


def test_which_block_a_name_loads(tmp_path: Path, web: LoopbackServer) -> None:
    """A bare name: HiDream Credentials first, then Secret; a type-slug name: that type only;
    a name of neither: one message naming both, and the run sends nothing."""
    name = _credentials("https://api.example.test")
    Secret(value="plain-secret-token").save(name, overwrite=True)  # same name, other type
    bound = {"api_url": "https://api.example.test", "token": TOKEN}
    assert load_token_block(name) == ("HiDream Credentials", bound)
    assert load_token_block(f"{SLUG}/{name}") == ("HiDream Credentials", bound)
    assert load_token_block(f"secret/{name}") == ("Secret", "plain-secret-token")

    missing = _name()
    with pytest.raises(TokenBindingError) as neither:
        load_token_block(missing)
    assert f"{SLUG}/{missing}" in str(neither.value) and f"secret/{missing}" in str(neither.value)
    with pytest.raises(TokenBindingError, match="HiDream Credentials block"):
        load_token_block(f"{SLUG}/{missing}")
    with pytest.raises(TokenBindingError, match="of type 'json'"):
        load_token_block(f"json/{name}")

    state = convert(
        manifest=str(image_manifest(tmp_path, [0])),
        out=str(tmp_path / "out"),
        api_url=web.url,
        token_block=missing,
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(TokenBindingError, match="neither a HiDream Credentials block"):
        state.result()
    assert web.requests == []
