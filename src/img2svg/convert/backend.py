"""Choose the API a run talks to: a remote service, or the embedded local one.

With neither an API URL nor a token, a run starts `img2svg serve` on a free loopback port for
its own duration (the embedded default). Its data directory lives with the outputs when they are
local, so a second run over the same `--out` can still see the tasks of the first.

A stored token is bound to its API (`run_credentials`): whoever may start a run (a deployment's
"Custom run" form) may name any `api_url`, so a token the run did not receive together with that
URL is never sent anywhere else than where it was configured to go.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from img2svg.client import HIDREAM_URL
from img2svg.run.settings import HIDREAM_RATE_PER_MINUTE, Endpoint
from img2svg.service.embedded import EmbeddedService
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import shard_service_dir, shard_service_identity

TOKEN_ENV = "HIDREAM_API_TOKEN"
API_URL_ENV = "HIDREAM_API_URL"
SERVICE_DIR = ".img2svg-service"


class TokenBindingError(ValueError):
    """A stored token was asked to go to another API than its own; nothing was sent."""


@dataclass(frozen=True)
class Credentials:
    """The API a run calls and the token it sends there; `url` None: the embedded service."""

    url: str | None = None
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(url={self.url!r}, token={'***' if self.token else None})"


def run_credentials(
    api_url: str | None,
    *,
    block_name: str | None = None,
    block_value: object = None,
    block_kind: str = "Secret",
    deployed: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Where the run's token may go, and the URL the run calls.

    - A Prefect Secret block (`block_name`, its raw `block_value`) holding JSON
      `{"api_url": ..., "token": ...}` binds the token to that URL; a plain string (or JSON
      without `api_url`) is bound to HiDream (`HIDREAM_URL`). `HIDREAM_API_URL` is not read.
      A HiDreamCredentials block (`block_kind`, its value as that dict) binds to its api_url
      (`img2svg.blocks.load_token_block` loads either kind).
    - `HIDREAM_API_TOKEN`, in a deployment's run (`deployed`: its parameters come from whoever
      may start a run): bound to `HIDREAM_API_URL`, else to HiDream.
    - `HIDREAM_API_TOKEN`, in a run its caller started (`img2svg convert`, `convert(...)` from
      Python): the caller gave both, so it goes to `api_url`, else `HIDREAM_API_URL`, else
      HiDream, as given.
    - No token: `api_url`, else `HIDREAM_API_URL`, else the embedded service.

    `api_url` naming another scheme, host or port than a bound token's raises
    `TokenBindingError`, whose message names the bound API (never the token).
    """
    env = os.environ if environ is None else environ
    if block_name:
        token, bound = _block_token(f"{block_kind} block {block_name!r}", block_value)
        return _bound(
            api_url,
            token,
            bound,
            what=f"the token of {block_kind} block {block_name!r}",
            how="save the other API's URL and token in a HiDream Credentials block of its own "
            '(or a Secret block holding JSON {"api_url": ..., "token": ...}), and name that '
            "block in token_block",
        )
    token = env.get(TOKEN_ENV) or None
    env_url = env.get(API_URL_ENV) or None
    if token and deployed:
        return _bound(
            api_url,
            token,
            env_url or HIDREAM_URL,
            what=f"${TOKEN_ENV} (in a deployment's run, bound to ${API_URL_ENV}, else HiDream)",
            how="name a HiDream Credentials block holding that API's URL and token (or a Secret "
            'block holding them as JSON {"api_url": ..., "token": ...}) in token_block',
        )
    url = api_url or env_url or (HIDREAM_URL if token else None)
    return Credentials(url.rstrip("/") if url else None, token)


def check_shard_credentials(api_url: str | None, token_block: str | None) -> None:
    """Shards run as a deployment's runs, on workers: an environment token there is bound to
    `HIDREAM_API_URL` (else HiDream), whatever this caller may do. Checked here with this
    process's environment before any shard starts, so a run that every shard would refuse
    fails once, now (`TokenBindingError`). A block binds alike everywhere: nothing to check."""
    if token_block or not os.environ.get(TOKEN_ENV):
        return
    try:
        run_credentials(api_url, deployed=True)
    except TokenBindingError as exc:
        raise TokenBindingError(
            f"the shards run as a deployment's runs on workers, where {exc} (set "
            f"{API_URL_ENV} to that API here and on the workers, or name a HiDream Credentials "
            "block in --token-block)"
        ) from None


def _block_token(block: str, value: object) -> tuple[str, str]:
    """(token, bound URL) from a block's raw value: a plain string, or a JSON object."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            return value, HIDREAM_URL  # today's format: a bare token, for HiDream
        value = parsed
    if not isinstance(value, dict):
        raise TokenBindingError(
            f'{block} holds neither a token nor JSON {{"api_url": "https://...", "token": "..."}}'
        )
    token, url = value.get("token"), value.get("api_url") or HIDREAM_URL
    if not isinstance(token, str) or not token:
        raise TokenBindingError(f'{block} holds JSON without a "token" string')
    if not isinstance(url, str) or _origin(url) is None:
        raise TokenBindingError(f'{block} has an "api_url" that is not an http(s) URL with a host')
    return token, url


def _bound(api_url: str | None, token: str, bound: str, *, what: str, how: str) -> Credentials:
    requested = _origin(api_url) if api_url else None
    if api_url and (requested is None or requested != _origin(bound)):
        raise TokenBindingError(
            f"refusing to send {what} to {_show(api_url)}: it is bound to {_show(bound)}. "
            f"Nothing was sent. Leave api_url empty to use {_show(bound)}, or {how}"
        )
    return Credentials((api_url or bound).rstrip("/"), token)


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) as the HTTP client will read the URL; None if it is no http(s) URL."""
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError):
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    default = 443 if parsed.scheme == "https" else 80
    return parsed.scheme, parsed.host.lower(), parsed.port or default


def _show(url: str) -> str:
    """scheme://host[:port] of a URL: what a message names (never a path, query or userinfo)."""
    origin = _origin(url)
    if origin is None:
        return repr(url[:200])
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + ("" if port == default else f":{port}")


def backend_identity(
    credentials: Credentials, outputs: OutputStore, shard: tuple[int, int] | None = None
) -> str:
    """Names the service a run would use, without starting it (dry runs and planning)."""
    if credentials.url:
        return credentials.url
    if shard is not None:
        return shard_service_identity(outputs, shard)
    if outputs.is_local:
        return f"embedded:{Path(outputs.root).resolve() / SERVICE_DIR}"
    return f"embedded:temporary:{uuid.uuid4()}"  # its tasks die with the run: never polled again


@contextmanager
def open_backend(
    credentials: Credentials,
    outputs: OutputStore,
    identity: str,
    idempotent: bool,
    shard: tuple[int, int] | None = None,
) -> Iterator[Endpoint]:
    """`identity` and `idempotent` come from `backend_identity` and `resends_are_free`, which
    answer before a run decides what to send. A shard without an API URL starts its own
    embedded service on its worker, so the local engine scales out with the workers."""
    if credentials.url:
        yield Endpoint(
            url=credentials.url,
            token=credentials.token,
            identity=identity,
            idempotent=idempotent,
        )
        return
    if shard is not None or outputs.is_local:
        data_dir = shard_service_dir(outputs, shard) if shard else Path(outputs.root) / SERVICE_DIR
        with EmbeddedService(data_dir) as service:
            yield Endpoint(url=service.url, embedded=True, identity=identity, idempotent=True)
        return
    with (
        tempfile.TemporaryDirectory(prefix="img2svg-service-") as tmp,
        EmbeddedService(Path(tmp)) as service,
    ):
        yield Endpoint(url=service.url, embedded=True, identity=identity, idempotent=True)


def resends_are_free(credentials: Credentials) -> bool:
    """Whether the run's backend dedupes keyed submissions (the embedded service does)."""
    return honours_idempotency_keys(credentials.url) if credentials.url else True


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
