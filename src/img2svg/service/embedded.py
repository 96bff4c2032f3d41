"""Start `img2svg serve` as a child process on a free loopback port, and stop it.

The pipeline uses this as its embedded default backend, and the tests use it to drive the real
service over HTTP. A separate process (not a thread) keeps the service's worker pool, signals
and crashes apart from the caller's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

import httpx

# Read by the service (server.py): it exits once this process is gone, so a pipeline killed by
# SIGKILL does not leave an orphaned service holding its data directory.
PARENT_PID_ENV = "IMG2SVG_PARENT_PID"


class ServiceStartError(RuntimeError):
    """The child exited or never became healthy; the message carries its last output."""


class EmbeddedService:
    def __init__(
        self,
        data_dir: Path,
        *,
        extra_args: list[str] | None = None,
        port: int = 0,
        startup_timeout_s: float = 60.0,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.extra_args = list(extra_args or [])
        self.requested_port = port
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path or self.data_dir / "service.log"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("service not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedService:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port_file = Path(tempfile.mkdtemp(prefix="img2svg-port-")) / "port"
        command = [
            sys.executable, "-m", "img2svg.cli", "serve",
            "--host", "127.0.0.1",
            "--port", str(self.requested_port),
            "--port-file", str(port_file),
            "--data-dir", str(self.data_dir),
            "--log-level", "warning",
            *self.extra_args,
        ]  # fmt: skip
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid()), **(self.env or {})}
        self.process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(
                    f"img2svg serve exited with {self.process.returncode}: {self._tail()}"
                )
            if port_file.exists():
                self.port = int(port_file.read_text())
                if self._healthy():
                    return self
            time.sleep(0.05)
        self.stop()
        raise ServiceStartError(f"img2svg serve not healthy after {self.startup_timeout_s} s")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL, as a crash would: no graceful shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def __enter__(self) -> EmbeddedService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
