"""Choose the API a run talks to: a remote service, or the embedded local one.

With neither an API URL nor a token, a run starts `img2svg serve` on a free loopback port for
its own duration (the embedded default). Its data directory lives with the outputs when they are
local, so a second run over the same `--out` can still see the tasks of the first.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from img2svg.client import HIDREAM_URL
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.settings import HIDREAM_RATE_PER_MINUTE, Endpoint
from img2svg.service.embedded import EmbeddedService

TOKEN_ENV = "HIDREAM_API_TOKEN"
API_URL_ENV = "HIDREAM_API_URL"
SERVICE_DIR = ".img2svg-service"


def token_from_env() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


@contextmanager
def open_backend(
    api_url: str | None, token: str | None, outputs: OutputStore
) -> Iterator[Endpoint]:
    api_url = api_url or os.environ.get(API_URL_ENV) or None
    if api_url or token:
        yield Endpoint(url=(api_url or HIDREAM_URL).rstrip("/"), token=token)
        return
    if outputs.is_local:
        data_dir = Path(outputs.root) / SERVICE_DIR
        with EmbeddedService(data_dir) as service:
            yield Endpoint(url=service.url, embedded=True)
        return
    with (
        tempfile.TemporaryDirectory(prefix="img2svg-service-") as tmp,
        EmbeddedService(Path(tmp)) as service,
    ):
        yield Endpoint(url=service.url, embedded=True)


def default_rate_limit(endpoint: Endpoint, requested: float | None) -> float | None:
    """HiDream's 20/min against a remote API unless told otherwise; none against our own."""
    if requested is not None:
        return requested if requested > 0 else None
    return None if endpoint.embedded else HIDREAM_RATE_PER_MINUTE
