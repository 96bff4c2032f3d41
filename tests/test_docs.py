"""The README documents what the code does: error codes and CLI options cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from img2svg.api.codes import ErrorCode
from img2svg.cli import build_parser

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_error_code_table_matches_the_code() -> None:
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (\d+) \| (yes|no|–) \| (.+?) \|$", README, re.M)
    documented = {int(code): (name, int(http), retry, msg) for code, name, http, retry, msg in rows}
    assert set(documented) == {int(c) for c in ErrorCode}
    for code in ErrorCode:
        name, http, retry, message = documented[int(code)]
        assert (name, http, message) == (code.name, code.http_status, code.message("en"))
        if code is not ErrorCode.SUCCESS:
            assert retry == ("yes" if code.retryable else "no"), code


def test_every_cli_option_is_documented() -> None:
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name, sub in commands.items():
        for action in sub._actions:
            for option in action.option_strings:
                if option in ("-h", "--help", "--verbose"):
                    continue
                assert option in README, f"img2svg {name} {option} is not in the README"
