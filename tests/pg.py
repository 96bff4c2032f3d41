"""A real PostgreSQL server for tests, from Debian's `postgresql` package.

The ledger's PostgreSQL backend is tested against the real thing: locking, advisory locks and
ON CONFLICT under concurrency are what matter, and no fake reproduces them. The server runs in a
temporary directory on a free loopback port with fsync off, trusts every local connection, and
is thrown away at the end. As root (CI containers), it runs as the `postgres` user, since the
server refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def _bindir() -> Path:
    candidates = []
    if shutil.which("pg_config"):
        found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)  # newest first
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian `postgresql` "
        "package (apt-get install postgresql) to run the PostgreSQL ledger tests"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as server:` a running server; `server.url(name)` to connect."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = 0
        self.root: Path | None = None
        self._options = ""

    def _argv(self, *command: str) -> list[str]:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return [*as_postgres, str(self.bindir / command[0]), *command[1:]]

    def _run(self, *command: str) -> None:
        done = subprocess.run(self._argv(*command), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): {done.stderr.strip()}")

    def __enter__(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="img2svg-pg-"))
        data, sockets, log = self.root / "data", self.root / "sockets", self.root / "server.log"
        sockets.mkdir()
        if os.geteuid() == 0:  # the server refuses to run as root
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        initdb = ["-D", str(data), "-U", "postgres", "--auth=trust", "--locale=C"]
        try:
            self._run("initdb", *initdb, "--encoding=UTF8", "--no-sync")
            for attempt in range(3):  # the free port may be taken before the server binds it
                self.port = _free_port()
                # -F: fsync off, the data is thrown away anyway.
                options = f"-F -p {self.port} -k {sockets} -c listen_addresses=127.0.0.1"
                start = ["start", "-w", "-t", "60", "-D", str(data), "-l", str(log)]
                try:
                    self._options = f"{options} -c max_connections=200"
                    self._run("pg_ctl", *start, "-o", self._options)
                    break
                except RuntimeError as exc:
                    if attempt == 2:
                        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                        raise RuntimeError(f"{exc}\nserver log:\n{tail}") from exc
        except BaseException:
            stop = self._argv("pg_ctl", "stop", "-m", "immediate", "-D", str(data))
            subprocess.run(stop, capture_output=True)  # it may have started, too late
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.root is not None
        try:
            self._run("pg_ctl", "stop", "-m", "immediate", "-D", str(self.root / "data"))
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def restart(self) -> None:
        """As `pg_ctl restart -m fast` (which would hand the server our output pipes): every
        connection is cut, the server is back at once."""
        self.stop()
        self.start()

    def stop(self) -> None:
        assert self.root is not None
        self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.root / "data"))

    def start(self) -> None:
        assert self.root is not None
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.root / "data"),
                  "-l", str(self.root / "server.log"), "-o", self._options)  # fmt: skip

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
