"""The README's quick start works for a newcomer: its first command, in a fresh copy of the
repository, with only the operating system's Python on PATH (no uv) and an empty HOME, converts
the sample manifest, every row succeeding.

The command is read from the README, so the test follows it. The copy holds what `git ls-files`
lists (tracked and untracked files, not ignored ones): the working tree as a clone of it would
be. uv downloads the locked packages from the package index into the empty HOME; the test points
`UV_CACHE_DIR` at the outer uv's cache so that this takes seconds, not minutes.

The bootstrap's other paths (no venv module, first runs at once, a half-made `.tools/`, a uv on
PATH) are checked against a stand-in python3 whose venv and pip take no time and whose uv is a
script that says how it was called.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# How this machine reaches the package index (proxies, certificates, mirrors): settings, not
# tools, so they pass into the bare environment.
NETWORK_SETTINGS = re.compile(
    r"(?i)(https?|all|no)_proxy|ssl_cert_(file|dir)|requests_ca_bundle"
    r"|pip_(index_url|extra_index_url|trusted_host|cert)"
    r"|uv_(index|index_url|extra_index_url|default_index|native_tls)"
)


def quick_start_commands() -> list[list[str]]:
    """The commands of the README's quick start, in order, as argument lists."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)^## ", readme, re.M | re.S)
    assert section, "the README has no '## Quick start' section"
    block = re.search(r"^```(?:bash|sh|console)?\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the README's quick start has no code block"
    commands = [shlex.split(line, comments=True) for line in block.group(1).splitlines()]
    return [command for command in commands if command]


def quick_start_command(word: str) -> list[str]:
    """The quick start's command that names `word` ("convert": the main job; "pytest")."""
    found = [command for command in quick_start_commands() if word in command]
    assert len(found) == 1, f"the README's quick start should have one {word!r} command: {found}"
    return found[0]


def _system_python_problem() -> str | None:
    if not SYSTEM_PYTHON.exists():
        return f"no {SYSTEM_PYTHON}"
    check = "import ensurepip, sys, venv; sys.exit(sys.version_info < (3, 11))"
    if subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True).returncode:
        return f"{SYSTEM_PYTHON} is older than 3.11 or has no venv module (python3-venv)"
    if shutil.which("uv", path=SYSTEM_PATH):
        return f"a uv on {SYSTEM_PATH}: ./uv would not install its own"
    return None


def _copy_working_tree(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if not source.is_symlink() and not source.exists():
            continue  # deleted in the working tree, not yet in the index
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def _outer_uv_cache() -> str | None:
    uv = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in $UV
    if not uv:
        return None
    found = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True)
    return (found.stdout.strip() or None) if found.returncode == 0 else None


@pytest.mark.timeout(600)
def test_the_first_command_converts_the_sample_with_only_the_system_python(
    tmp_path: Path,
) -> None:
    problem = _system_python_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}: .ci/run installs python3-venv")
        pytest.skip(problem)
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no file list to copy")
    command = quick_start_command("convert")
    clone, home = tmp_path / "clone", tmp_path / "home"
    home.mkdir()
    _copy_working_tree(clone)
    env = {name: value for name, value in os.environ.items() if NETWORK_SETTINGS.fullmatch(name)}
    env |= {"PATH": SYSTEM_PATH, "HOME": str(home)}
    if cache := _outer_uv_cache():
        env["UV_CACHE_DIR"] = cache

    run = subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=540)

    assert run.returncode == 0, f"{shlex.join(command)}\n{run.stdout}\n{run.stderr}"
    manifest = clone / command[command.index("convert") + 1]
    out = clone / (command[command.index("--out") + 1] if "--out" in command else "out")
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == len(pd.read_csv(manifest))
    assert (results["status"] == "succeeded").all(), results[["row_id", "status", "error"]]
    # uv came from ./uv's own .tools/, the project runs on the system's Python, none downloaded.
    assert (clone / ".tools" / "bin" / "uv").is_file()
    assert f"home = {SYSTEM_PYTHON.parent}\n" in (clone / ".venv" / "pyvenv.cfg").read_text()
    assert not (home / ".local" / "share" / "uv" / "python").exists()
    shutil.rmtree(clone)


# A python3 whose `-m venv DIR` makes DIR/bin/python, whose `-m pip install uv` copies in a uv
# that prints how it was called; `import ensurepip` fails when NO_VENV is set. The rest goes to
# the real Python.
STAND_IN_PYTHON = r"""#!/bin/sh
case "$*" in
  *ensurepip*) [ -z "${NO_VENV:-}" ] || { echo "No module named 'ensurepip'" >&2; exit 1; } ;;
esac
if [ "$1" = -m ] && [ "$2" = venv ]; then
  mkdir -p "$3/bin"
  printf '%s\n' '#!/bin/sh' 'sleep 0.2' 'cp @PACKAGE@ "$(dirname "$0")/uv"' >"$3/bin/python"
  chmod +x "$3/bin/python"
  exit 0
fi
exec @PYTHON@ "$@"
"""
STAND_IN_UV = """#!/bin/sh
echo "uv from $0: $* UV_PYTHON=$UV_PYTHON $UV_PYTHON_DOWNLOADS"
"""


def test_the_bootstrap_installs_uv_once_and_only_when_there_is_none(tmp_path: Path) -> None:
    base_path = "/usr/bin:/bin"
    if shutil.which("uv", path=base_path):
        pytest.skip(f"a uv on {base_path}")
    repo, stand_in = tmp_path / "repo", tmp_path / "bin"
    repo.mkdir()
    stand_in.mkdir()
    shutil.copy2(ROOT / "uv", repo / "uv")
    python, package = stand_in / "python3", tmp_path / "uv-package"  # not on PATH
    python.write_text(
        STAND_IN_PYTHON.replace("@PYTHON@", shlex.quote(sys.executable)).replace(
            "@PACKAGE@", shlex.quote(str(package))
        )
    )
    package.write_text(STAND_IN_UV)
    python.chmod(0o755)
    package.chmod(0o755)
    env = {"PATH": f"{stand_in}:{base_path}", "HOME": str(tmp_path)}

    def uv(*args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            ["./uv", *args],
            cwd=repo,
            env=env | extra,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    # No venv module: one line saying what to install, and nothing made.
    no_venv = uv("--version", NO_VENV="1")
    err = no_venv.communicate(timeout=30)[1]
    assert no_venv.returncode != 0 and "python3-venv" in err and len(err.splitlines()) == 1, err
    assert sorted(p.name for p in repo.iterdir()) == ["uv"]

    # Four first runs at once: all run the one uv that got there first; nothing left behind.
    runs = [uv("run", "pytest") for _ in range(4)]
    outs = [run.communicate(timeout=60)[0] for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outs
    tools_uv = repo / ".tools" / "bin" / "uv"
    interpreter = subprocess.run(
        [sys.executable, "-c", "import sys; print(sys.executable)"], capture_output=True, text=True
    ).stdout.strip()
    assert set(outs) == {f"uv from {tools_uv}: run pytest UV_PYTHON={interpreter} never\n"}
    assert sorted(p.name for p in repo.iterdir()) == [".tools", "uv"]

    # The user's own settings win.
    mine = uv("--version", UV_PYTHON="3.12", UV_PYTHON_DOWNLOADS="manual")
    assert mine.communicate(timeout=30)[0].endswith(": --version UV_PYTHON=3.12 manual\n")

    # A half-made .tools/ (no ready mark), or one made for an older requirement, is replaced.
    ready = repo / ".tools" / "ready"
    requirement = ready.read_text()
    for spoil in (ready.unlink, lambda: ready.write_text("uv>=0.0.1\n")):
        spoil()
        rebuilt = uv("--version")
        assert rebuilt.communicate(timeout=30)[0].startswith(f"uv from {tools_uv}:")
        assert ready.read_text() == requirement
        assert sorted(p.name for p in repo.iterdir()) == [".tools", "uv"]

    # A uv on PATH runs as it is, even with this script's own folder ahead of it on PATH.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "uv").write_text('#!/bin/sh\necho "the PATH uv: $*"\n')
    (elsewhere / "uv").chmod(0o755)
    env["PATH"] = f"{repo}:{elsewhere}:{env['PATH']}"
    assert uv("run", "x").communicate(timeout=30)[0] == "the PATH uv: run x\n"
