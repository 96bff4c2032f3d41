"""Callback tokens: what ties a task's notify_url callback to the claim that sent its POST.

Each submission carries `<notify_url>/<token>`, a fresh random token. The ledger keeps only its
SHA-256 beside the claim, so reading the ledger does not let anyone forge a callback, and the
token says nothing of the API token or of the image.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 43 characters


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def callback_url(base: str, token: str) -> str:
    """Where the API is asked to POST the task's end: the receiver's URL, the token last."""
    return f"{base.rstrip('/')}/{token}"


def is_token(value: str) -> bool:
    return TOKEN_PATTERN.fullmatch(value) is not None


NOTIFY_URL_ENV = "IMG2SVG_NOTIFY_URL"


class NotifyUrlError(ValueError):
    """A notify URL the API could not call back, or could not append a token to."""


def notify_base(given: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The receiver's URL a run's submissions carry (the parameter, else $IMG2SVG_NOTIFY_URL),
    checked: http(s), a host, no query or fragment (the token is appended as the last path
    segment). A loopback URL is fine: the local service calls it back."""
    url = given or (os.environ if environ is None else environ).get(NOTIFY_URL_ENV) or None
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NotifyUrlError(f"--notify-url must be an http(s) URL with a host, not {url!r}")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise NotifyUrlError(
            "--notify-url takes no query, fragment or credentials: each submission appends "
            "its own token as the last path segment"
        )
    return url.strip().rstrip("/")
