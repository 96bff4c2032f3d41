"""Choose the API a run talks to: a remote service, or the embedded local one.

With neither an API URL nor a token, a run starts `img2svg serve` on a free loopback port for
its own duration (the embedded default). Its data directory lives with the outputs when they are
local, so a second run over the same `--out` can still see the tasks of the first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from img2svg.client import HIDREAM_URL
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.settings import HIDREAM_RATE_PER_MINUTE, Endpoint
from img2svg.service.embedded import EmbeddedService

TOKEN_ENV = "HIDREAM_API_TOKEN"
API_URL_ENV = "HIDREAM_API_URL"
STATE_DIR_ENV = "IMG2SVG_STATE_DIR"
SERVICE_DIR = ".img2svg-service"
LEDGER_FILE = ".img2svg/ledger.sqlite3"


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def _remote_url(api_url: str | None, token: str | None) -> str | None:
    api_url = api_url or os.environ.get(API_URL_ENV) or None
    if api_url or token:
        return (api_url or HIDREAM_URL).rstrip("/")
    return None


def backend_identity(api_url: str | None, token: str | None, outputs: OutputStore) -> str:
    """Names the service a run would use, without starting it (dry runs and planning)."""
    remote = _remote_url(api_url, token)
    if remote:
        return remote
    if outputs.is_local:
        return f"embedded:{Path(outputs.root).resolve() / SERVICE_DIR}"
    return f"embedded:temporary:{uuid.uuid4()}"  # its tasks die with the run: never polled again


def ledger_path(outputs: OutputStore) -> Path:
    """With local outputs, the ledger sits beside them; else in a local state directory."""
    if outputs.is_local:
        return Path(outputs.root) / LEDGER_FILE
    state_dir = Path(os.environ.get(STATE_DIR_ENV) or Path.home() / ".cache" / "img2svg")
    digest = hashlib.sha256(outputs.out.encode()).hexdigest()[:16]
    return state_dir / "ledgers" / digest / "ledger.sqlite3"


@contextmanager
def open_backend(
    api_url: str | None, token: str | None, outputs: OutputStore, identity: str, idempotent: bool
) -> Iterator[Endpoint]:
    """`identity` and `idempotent` come from `backend_identity` and `resends_are_free`, which
    answer before a run decides what to send."""
    remote = _remote_url(api_url, token)
    if remote:
        yield Endpoint(url=remote, token=token, identity=identity, idempotent=idempotent)
        return
    if outputs.is_local:
        data_dir = Path(outputs.root) / SERVICE_DIR
        with EmbeddedService(data_dir) as service:
            yield Endpoint(url=service.url, embedded=True, identity=identity, idempotent=True)
        return
    with (
        tempfile.TemporaryDirectory(prefix="img2svg-service-") as tmp,
        EmbeddedService(Path(tmp)) as service,
    ):
        yield Endpoint(url=service.url, embedded=True, identity=identity, idempotent=True)


def resends_are_free(api_url: str | None, token: str | None) -> bool:
    """Whether the run's backend dedupes keyed submissions (the embedded service does)."""
    remote = _remote_url(api_url, token)
    return honours_idempotency_keys(remote) if remote else True


def honours_idempotency_keys(url: str) -> bool:
    """Asks `GET /healthz`; anything else than img2svg serve's answer means no."""
    try:
        answer = httpx.get(f"{url}/healthz", timeout=5.0, follow_redirects=False).json()
    except (httpx.HTTPError, ValueError):
        return False
    return isinstance(answer, dict) and answer.get("idempotency_keys") is True


def default_rate_limit(endpoint: Endpoint, requested: float | None) -> float | None:
    """HiDream's 20/min against a remote API unless told otherwise; none against our own."""
    if requested is not None:
        return requested if requested > 0 else None
    return None if endpoint.embedded else HIDREAM_RATE_PER_MINUTE
