"""The documents say what the code does: error codes, CLI options, the quick start and the links
between them cannot drift."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from img2svg.api.codes import ErrorCode
from tests.test_quickstart import quick_start_command

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
DOCUMENTS = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def test_error_code_table_matches_the_code() -> None:
    service = read(DOCS / "service.md")
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \| (\d+) \| (yes|no|–) \| (.+?) \|$", service, re.M)
    documented = {int(code): (name, int(http), retry, msg) for code, name, http, retry, msg in rows}
    assert set(documented) == {int(c) for c in ErrorCode}
    for code in ErrorCode:
        name, http, retry, message = documented[int(code)]
        assert (name, http, message) == (code.name, code.http_status, code.message("en"))
        if code is not ErrorCode.SUCCESS:
            assert retry == ("yes" if code.retryable else "no"), code


def _help(*args: str) -> str:
    """What `img2svg ARGS --help` prints, as a user would see it."""
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "img2svg.cli", *args, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _options(help_text: str) -> set[str]:
    """The options a help text lists (argparse indents each entry by two spaces)."""
    found = set()
    for line in help_text.splitlines():
        entry = re.match(r"^  (-\S.*?)(?: {2,}|$)", line)
        if entry:
            found.update(re.findall(r"--[\w-]+", entry.group(1)))
    return found - {"--help"}


def test_every_cli_option_is_named_in_docs_cli() -> None:
    top = _help()
    listed = re.search(r"^positional arguments:\n(.*?)\n\n", top, re.M | re.S)
    assert listed, top
    commands = re.findall(r"^    (\w[\w-]*)", listed.group(1), re.M)
    assert {"convert", "serve"} <= set(commands), top
    cli = read(DOCS / "cli.md")
    listed_options = {"": _options(top)} | {f"{c} ": _options(_help(c)) for c in commands}
    missing = [
        f"img2svg {command}{option}"
        for command, options in listed_options.items()
        for option in sorted(options)
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", cli)
    ]
    assert not missing, f"not named in docs/cli.md: {missing}"


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def _links(text: str) -> list[str]:
    prose = re.sub(r"`[^`\n]*`", "", _prose(text))
    return re.findall(r"\]\(([^)\s]+)\)", prose) + re.findall(r"<([a-z][\w+.-]*:[^>\s]+)>", prose)


def test_links_stay_in_the_repository_and_resolve() -> None:
    broken = []
    for document in DOCUMENTS:
        text = read(document)
        assert "../shared" not in text and "/work/shared" not in text, document
        for link in _links(text):
            where = f"{document.relative_to(ROOT)}: {link}"
            target, _, fragment = link.partition("#")
            if re.match(r"[a-z][\w+.-]*:", target) or target.startswith("/"):
                broken.append(f"{where} leaves the repository")
                continue
            path = (document.parent / target).resolve() if target else document
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{where} names no file of the repository")
            elif fragment and path.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", _prose(read(path)), re.M)
                if fragment not in {_anchor(heading) for heading in headings}:
                    broken.append(f"{where} names no heading of {path.name}")
    assert not broken, "\n".join(broken)


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run ends with the README's test command, as written."""
    command = " ".join(quick_start_command("pytest"))
    lines = [line.strip() for line in read(ROOT / ".ci" / "run").splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert commands[-1] == command, f".ci/run ends with {commands[-1]!r}, not {command!r}"
    bootstrap = ROOT / quick_start_command("convert")[0]
    assert bootstrap.is_file() and os.access(bootstrap, os.X_OK), bootstrap
