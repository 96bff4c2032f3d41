"""A throwaway Prefect server, its CLI and workers, for tests of deployments and shards.

Started as a user would: `prefect server start` on a loopback port with its own PREFECT_HOME,
the CLI pointed at it through the children's environment only. Every process started is
stopped (its whole process group) at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

REPO = Path(__file__).resolve().parents[1]
PREFECT = [sys.executable, "-m", "prefect"]  # the venv's Prefect: the worker imports our code
POOL = "img2svg-pool"
# Variables of the caller's environment that would point the children elsewhere (another API,
# a profile, a real token): dropped from every child's environment.
FOREIGN_PREFIXES = ("PREFECT_", "HIDREAM_", "IMG2SVG_")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop_group(pgid: int, leader: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM a process group, then SIGKILL whatever is left of it after 15 s."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()  # reap it: a zombie leader would keep the group "alive"
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
    if leader is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(timeout=5)


@dataclass
class PrefectStack:
    """A throwaway Prefect server and the CLI pointed at it (through child environments only)."""

    home: Path
    port: int
    logs: Path
    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    # Process groups started by others on our behalf (the worker's flow-run process).
    extra_groups: list[int] = field(default_factory=list)
    # Set in every child's environment (an S3 endpoint, a ledger URL...).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_CLI_PROMPT="false",
            PREFECT_CLI_COLORS="false",
            PREFECT_CLI_WRAP_LINES="false",
            PREFECT_WORKER_QUERY_SECONDS="1",
            DO_NOT_TRACK="1",
            # prefect.yaml's pull step is "{{ $PWD }}": what a shell at the repository root sets.
            PWD=str(REPO),
        )
        env.update(self.extra_env)
        return env

    def spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None, command: list[str] = PREFECT
    ) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            [*command, *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        log.close()
        self.processes.append((name, process))
        return process

    def cli(self, *args: str, timeout_s: float = 90.0) -> str:
        done = subprocess.run(
            [*PREFECT, *args],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"prefect {' '.join(args)} exited {done.returncode}:\n{output}"
        return output

    def log(self, name: str) -> str:
        return _tail(self.logs / f"{name}.log")

    def wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        server = self.processes[0][1]
        while time.monotonic() < deadline:
            assert server.poll() is None, f"prefect server exited:\n{self.log('server')}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=2).json() is True:
                    return
            time.sleep(0.25)
        raise AssertionError(f"prefect server not healthy in {timeout_s} s:\n{self.log('server')}")

    def call(self, fn: Any, *args: Any) -> Any:
        """`await fn(client, *args)` with a Prefect client of this server; settings are restored."""

        async def run() -> Any:
            async with get_client() as client:
                return await fn(client, *args)

        with temporary_settings(updates={PREFECT_API_URL: self.url}):
            return asyncio.run(run())

    def stop(self) -> None:
        # Workers (and their flow runs) first, the server last.
        for pgid in self.extra_groups:
            _stop_group(pgid)
        for _, process in reversed(self.processes):
            _stop_group(process.pid, process)


@contextlib.contextmanager
def running_prefect(root: Path) -> Iterator[PrefectStack]:
    """A Prefect server under `root`, with the process work pool the deployments use."""
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stack = PrefectStack(home=root / "prefect-home", port=_free_port(), logs=logs)
    try:
        stack.spawn("server", "server", "start", "--host", "127.0.0.1", "--port", str(stack.port))
        stack.wait_healthy()
        stack.cli("work-pool", "create", POOL, "--type", "process")
        yield stack
    finally:
        stack.stop()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), whatever session it started: a process worker
    runs each flow run in a session of its own, and a machine that dies takes them all."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_machine(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and everything it started, at once: what losing its machine does."""
    victims = [process.pid, *descendants(process.pid)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)
