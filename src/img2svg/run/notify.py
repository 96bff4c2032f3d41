"""Callback tokens: what ties a task's notify_url callback to the claim that sent its POST.

Each submission carries `<notify_url>/<token>`, a fresh random token. The ledger keeps only its
SHA-256 beside the claim, so reading the ledger does not let anyone forge a callback, and the
token says nothing of the API token or of the image.
"""

from __future__ import annotations

import hashlib
import re
import secrets

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
