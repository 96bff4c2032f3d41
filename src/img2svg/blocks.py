"""Prefect blocks of img2svg: `HiDreamCredentials`, an API's URL and its token, as a typed form.

Register the block type once per Prefect server, so the UI offers its form ("Blocks" > "+"):

    prefect block register -m img2svg.blocks

A run names the saved block in `token_block` (`--token-block NAME`): the token is bound to the
block's `api_url` and is sent nowhere else (`img2svg.convert.backend.run_credentials`). A Secret
block of the same name keeps working (`load_token_block`).

Only `HiDreamCredentials` is a block class in this module's namespace: `prefect block register`
registers every block class it finds here.
"""

from __future__ import annotations

import httpx
from prefect.blocks.core import Block
from pydantic import Field, SecretStr, field_validator

from img2svg.client import HIDREAM_URL

CREDENTIALS_SLUG = "hidream-credentials"
SECRET_SLUG = "secret"


class HiDreamCredentials(Block):
    """The URL of a HiDream-compatible img2svg API and the token it accepts. A run naming this
    block in token_block sends the token to that API only: a run naming another api_url fails
    before anything is sent."""

    _block_type_name = "HiDream Credentials"
    _description = (
        "The URL of a HiDream-compatible img2svg API and its token, for img2svg runs "
        "(token_block): the token is sent to that API only, a run naming another api_url fails."
    )
    _code_example = """```python
from img2svg.blocks import HiDreamCredentials

HiDreamCredentials(api_url="https://www.hidreamai.com", token="...").save("hidream")
```
Then run with `img2svg convert MANIFEST --token-block hidream` (flow parameter token_block)."""

    api_url: str = Field(
        HIDREAM_URL,
        title="API URL",
        description="Base URL of the HiDream-compatible API the token belongs to (http or "
        "https). The token is never sent to any other scheme, host or port.",
    )
    token: SecretStr = Field(
        min_length=1,
        title="Token",
        description="The API's bearer token. Stored as a secret: never shown in logs, "
        "results or artifacts.",
    )

    @field_validator("api_url")
    @classmethod
    def _an_http_url(cls, value: str) -> str:
        value = value.strip()
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, TypeError, ValueError):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            raise ValueError("api_url must be an http(s) URL with a host")
        return value


def load_token_block(name: str) -> tuple[str, object]:
    """(kind, value) of the block `token_block` names, for `run_credentials`: ("HiDream
    Credentials", {"api_url": ..., "token": ...}) or ("Secret", the Secret's raw value).

    `name` is "hidream-credentials/NAME", "secret/NAME" or a bare NAME (a HiDreamCredentials
    block of that name, else a Secret block). Neither: `TokenBindingError`, naming both types.
    """
    from prefect.blocks.system import Secret

    from img2svg.convert.backend import TokenBindingError

    slug, _, bare = name.rpartition("/")
    if slug not in ("", CREDENTIALS_SLUG, SECRET_SLUG):
        raise TokenBindingError(
            f"token_block {name!r} names a block of type {slug!r}: name a HiDream Credentials "
            f"block ({CREDENTIALS_SLUG}/NAME) or a Secret block (secret/NAME), or a bare NAME"
        )
    if slug in ("", CREDENTIALS_SLUG):
        credentials = _load_if_found(HiDreamCredentials, bare)
        if credentials is not None:
            return "HiDream Credentials", {
                "api_url": credentials.api_url,
                "token": credentials.token.get_secret_value(),
            }
    if slug in ("", SECRET_SLUG):
        secret = _load_if_found(Secret, bare)
        if secret is not None:
            return "Secret", secret.value.get_secret_value()
    looked_for = {
        "": f"neither a HiDream Credentials block ({CREDENTIALS_SLUG}/{bare}) nor a Secret "
        f"block (secret/{bare})",
        CREDENTIALS_SLUG: f"no HiDream Credentials block ({CREDENTIALS_SLUG}/{bare})",
        SECRET_SLUG: f"no Secret block (secret/{bare})",
    }[slug]
    raise TokenBindingError(
        f"token_block {name!r}: the Prefect API has {looked_for}. Nothing was sent. Save one "
        "(docs/cli.md, '--token-block') or correct token_block"
    )


def _load_if_found(cls: type[Block], name: str) -> Block | None:
    """The block `cls` saved as `name`; None if there is none (other errors propagate)."""
    from prefect.exceptions import ObjectNotFound

    try:
        return cls.load(name)
    except ValueError as exc:
        if isinstance(exc.__cause__, ObjectNotFound):
            return None
        raise
