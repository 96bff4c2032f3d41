"""`img2svg serve` tokens: read from a file (not the command line `ps` shows), and a warning
when a service without tokens listens beyond loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from img2svg.api.codes import ErrorCode
from img2svg.cli import build_parser, main
from img2svg.service.auth import TokenFileError, read_token_file
from img2svg.service.config import ServiceConfig
from img2svg.service.server import open_access_warning
from tests.helpers import SUBMIT, b64, logo_png

TOKENS = """\
# laptop
t0k-laptop-1

  t0k-ci-2   # the CI runner
"""


def test_token_file_tokens_are_enforced_and_kept_off_the_command_line(
    start_service, tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    path.write_text(TOKENS)
    service = start_service("--token-file", str(path))
    body = {"image": b64(logo_png(24)), "mode": "fast"}
    for token in ("t0k-laptop-1", "t0k-ci-2"):
        answer = httpx.post(
            service.url + SUBMIT, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.json()["code"] == 0
    for headers in ({}, {"Authorization": "Bearer laptop"}, {"Authorization": "Bearer #"}):
        refused = httpx.post(service.url + SUBMIT, json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["code"] == ErrorCode.UNAUTHORIZED
    assert service.process is not None
    command_line = Path(f"/proc/{service.process.pid}/cmdline").read_bytes()
    assert b"t0k-" not in command_line


def test_read_token_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text(TOKENS + "with#hash\n")
    assert read_token_file(path) == {"t0k-laptop-1", "t0k-ci-2", "with#hash"}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read token file"),
        ("# only a comment\n\n", "holds no token"),
        ("good\nsecret part two\n", "line 2: a token cannot contain whitespace"),
    ],
)
def test_a_bad_token_file_stops_serve(tmp_path: Path, capsys, content, says) -> None:
    path = tmp_path / "tokens"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TokenFileError, match=says):
        read_token_file(path)
    code = main(["serve", "--data-dir", str(tmp_path / "data"), "--token-file", str(path)])
    assert code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "secret" not in err  # the message never echoes a token
    assert not (tmp_path / "data").exists()  # refused before anything started


def test_token_help_warns_about_ps() -> None:
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    helps = {a.option_strings[0]: a.help for a in serve._actions if a.option_strings}
    assert "ps" in helps["--token"] and "--token-file" in helps["--token"]


class _Bound:
    def __init__(self, address: str) -> None:
        self.address = address

    def getsockname(self) -> tuple:
        return (self.address, 8000)


@pytest.mark.parametrize(
    ("address", "tokens", "warns"),
    [
        ("0.0.0.0", frozenset(), True),
        ("::", frozenset(), True),
        ("192.168.1.20", frozenset(), True),
        ("0.0.0.0", frozenset({"t"}), False),
        ("127.0.0.1", frozenset(), False),
        ("127.0.0.2", frozenset(), False),
        ("::1", frozenset(), False),
    ],
)
def test_open_access_warning(address: str, tokens: frozenset[str], warns: bool) -> None:
    warning = open_access_warning(_Bound(address), ServiceConfig(tokens=tokens))  # type: ignore[arg-type]
    assert (warning is not None) == warns
    if warning:
        assert "\n" not in warning
        assert "8000 without tokens" in warning and address in warning
