"""A temporary Prefect API for one `img2svg convert`, started while the pipeline is imported.

With no Prefect server configured, Prefect starts a temporary one on the first API call, after
importing its whole server stack into the caller (4 s) and then waiting for the server process
to import it again (7 s): a fixed cost of every CLI run, paid one step after the other. This
starts the same server process (Prefect's own app factory and environment) first thing, so it
boots on the other core while the CLI imports the pipeline, and the flow then runs against it.
When a Prefect API is configured (`PREFECT_API_URL`, in the environment or the profile),
nothing is started and Prefect behaves as it always does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType

import httpx

_STARTUP_TIMEOUT_S = 90.0


class TemporaryPrefectAPI:
    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> TemporaryPrefectAPI:
        import importlib.util

        spec = importlib.util.find_spec("prefect")
        assert spec is not None and spec.origin is not None
        app_dir = Path(spec.origin).parent.parent
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory"]
        command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def settings(self) -> AbstractContextManager[object]:
        """Wait until the server answers, then point Prefect at it for the `with` block."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        self._wait_healthy()
        return temporary_settings(updates={PREFECT_API_URL: self.url})

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the temporary Prefect server exited with code {self.process.returncode}"
                    )
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)
        raise RuntimeError(f"the temporary Prefect server did not start in {_STARTUP_TIMEOUT_S} s")

    def stop(self) -> None:
        if self.process is None:
            return
        _drain_prefect_workers()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> TemporaryPrefectAPI:
        return self if self.process is not None else self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def temporary_api_if_needed() -> TemporaryPrefectAPI | nullcontext[None]:
    """A started server when the run would otherwise start Prefect's own temporary one."""
    if os.environ.get("PREFECT_API_URL"):
        return nullcontext()
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():  # from the profile
        return nullcontext()
    return TemporaryPrefectAPI().start()


def _drain_prefect_workers() -> None:
    """Send the run's last logs and events while the server is still up (else Prefect prints
    "Error flushing ..." tracebacks at exit)."""
    try:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)
    except Exception:  # a Prefect internal moved: the run is over either way
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
