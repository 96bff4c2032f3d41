"""Bearer-token check, the account a token belongs to, and where tokens are read from.

With no tokens configured (local use) every caller is one anonymous account and any token is
accepted. Accounts are named by a hash of the token so that no token is ever stored or logged.
Idempotency keys are scoped by `caller_scope`, the hash of the token the caller presented, even
when tokens are not checked: two callers of an open service never share a key space.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

ANONYMOUS = "anonymous"
NO_TOKEN_SCOPE = "no-token"

_INLINE_COMMENT = re.compile(r"\s+#.*$")


class TokenFileError(ValueError):
    """The token file cannot be read, has a malformed line, or holds no token."""


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def account_for(authorization: str | None, tokens: frozenset[str]) -> str | None:
    """The caller's account id, or None when tokens are configured and this one is not valid."""
    if not tokens:
        return ANONYMOUS
    token = bearer_token(authorization)
    if token is None:
        return None
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        return None
    return "acct-" + _digest(token)


def caller_scope(authorization: str | None) -> str:
    """Who is calling, as far as the request says, whether or not tokens are checked.

    A bearer token gives its account name (the same as `account_for` once tokens are checked);
    another Authorization value gets a hash of its own; none at all is one more scope.
    """
    token = bearer_token(authorization)
    if token is not None:
        return "acct-" + _digest(token)
    if authorization and authorization.strip():
        return "auth-" + _digest(authorization.strip())
    return NO_TOKEN_SCOPE


def read_token_file(path: Path) -> frozenset[str]:
    """One token per line; blank lines and `#` comments (whole-line or after a space) ignored."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read token file {path}: {exc}") from exc
    tokens: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        token = _INLINE_COMMENT.sub("", line).strip()
        if not token or token.startswith("#"):
            continue
        if any(ch.isspace() for ch in token):
            raise TokenFileError(f"{path} line {number}: a token cannot contain whitespace")
        tokens.add(token)
    if not tokens:
        raise TokenFileError(f"token file {path} holds no token")
    return frozenset(tokens)
