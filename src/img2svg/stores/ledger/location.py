"""Where a ledger lives, and how to name it without its password.

A location is a file path (SQLite) or a `postgresql://` / `postgres://` URL. A URL may carry a
password (`user:secret@host` or `?password=secret`). Logs, messages, exceptions and reprs name a
location only through `describe`, and any text from a database driver goes through `scrub`
first, since libpq's messages may quote the connection string.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")
HIDDEN = "***"

_PASSWORD_SETTING = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def _scheme(location: Path | str) -> str | None:
    if not isinstance(location, str) or "://" not in location:
        return None
    return location.split("://", 1)[0].lower()


def is_postgres(location: Path | str) -> bool:
    return _scheme(location) in POSTGRES_SCHEMES


def check(location: Path | str) -> None:
    """Refuse a URL the ledger cannot use, rather than make a folder named `s3:` for it."""
    scheme = _scheme(location)
    if scheme is not None and scheme not in POSTGRES_SCHEMES:
        raise ValueError(
            f"unsupported ledger location {describe(location)}: use a file path or a "
            "postgresql:// URL"
        )


def describe(location: Path | str) -> str:
    """The location as logs and messages show it: any password replaced by `***`."""
    if _scheme(location) is None:
        return str(location)
    try:
        parts = urlsplit(str(location))
    except ValueError:  # e.g. an unclosed IPv6 bracket: show nothing that could be a secret
        return f"{_scheme(location)}://{HIDDEN}"
    userinfo, at, hostport = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:{HIDDEN}@{hostport}"
    query = _PASSWORD_SETTING.sub(rf"\g<1>{HIDDEN}", parts.query)
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _secrets(location: Path | str) -> set[str]:
    if _scheme(location) is None:
        return set()
    text = str(location)
    found: set[str] = set()
    userinfo = text.split("://", 1)[1].split("/", 1)[0].rpartition("@")[0]
    if ":" in userinfo:
        found.add(userinfo.split(":", 1)[1])
    found.update(match.group(2).strip("'") for match in _PASSWORD_SETTING.finditer(text))
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret}


def scrub(text: str, location: Path | str) -> str:
    """`text` (e.g. a driver's error message) with the location's password taken out."""
    text = text.replace(str(location), describe(location))
    for secret in sorted(_secrets(location), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return _PASSWORD_SETTING.sub(rf"\g<1>{HIDDEN}", text)
