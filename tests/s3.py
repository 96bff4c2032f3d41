"""A real S3 server on loopback (moto in server mode, its own process) for the S3 tests.

s3fs talks to it over HTTP exactly as to AWS: the endpoint and dummy credentials go into the
environment (`env`), where fsspec (FSSPEC_S3_ENDPOINT_URL), botocore (AWS_ENDPOINT_URL) and
every child process read them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "FSSPEC_S3_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self) -> S3Server:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-2000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/moto-api/", timeout=2).status_code < 500:
                    return self
            time.sleep(0.2)
        raise AssertionError("moto server not up after 60 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
            if self.process.poll() is None:
                self.process.kill()


@contextlib.contextmanager
def s3_server(log: Path) -> Iterator[S3Server]:
    """The server, and this process's fsspec pointed at it for the duration."""
    import fsspec.config

    server = S3Server(log).start()
    saved_env = {k: os.environ.get(k) for k in server.env}
    saved_conf = fsspec.config.conf.get("s3")
    os.environ.update(server.env)
    fsspec.config.conf["s3"] = {"endpoint_url": server.url}
    try:
        yield server
    finally:
        server.stop()
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if saved_conf is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved_conf
