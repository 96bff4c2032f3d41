"""Bearer-token check and the account a token belongs to.

With no tokens configured (local use) every caller is one anonymous account and any token is
accepted. Accounts are named by a hash of the token so that no token is ever stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def account_for(authorization: str | None, tokens: frozenset[str]) -> str | None:
    """The caller's account id, or None when tokens are configured and this one is not valid."""
    if not tokens:
        return "anonymous"
    token = bearer_token(authorization)
    if token is None:
        return None
    if not any(hmac.compare_digest(token.encode(), t.encode()) for t in tokens):
        return None
    return "acct-" + hashlib.sha256(token.encode()).hexdigest()[:16]
