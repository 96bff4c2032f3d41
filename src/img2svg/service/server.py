"""Run the service with uvicorn, on a given port or on a free one reported through a file.

`--port 0` plus `--port-file` is how the pipeline starts an embedded service without racing
other processes for a port: the socket is bound here and its real port written once listening.
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO

import uvicorn

from img2svg.fsutil import atomic_write
from img2svg.service.app import create_app
from img2svg.service.config import ServiceConfig
from img2svg.service.embedded import PARENT_PID_ENV


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def is_loopback(address: str) -> bool:
    """Whether a bound address is reachable from this machine only (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def open_access_warning(sock: socket.socket, config: ServiceConfig) -> str | None:
    """The warning to log when a service without tokens listens beyond loopback."""
    host, port = sock.getsockname()[:2]
    if config.tokens or is_loopback(host):
        return None
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return (
        f"listening on {where} without tokens: anyone who can reach it can submit tasks "
        "and read results; set --token-file or IMG2SVG_SERVE_TOKENS"
    )


def write_port_file(path: Path, port: int) -> None:
    """Whole or absent: the parent polls for the file and reads it as soon as it exists."""
    atomic_write(path, f"{port}\n".encode())


class PortFileServer(uvicorn.Server):
    """Writes the port file only once the app has started (lifespan done), so readers can poll."""

    def __init__(self, config: uvicorn.Config, port_file: Path | None, port: int) -> None:
        super().__init__(config)
        self._port_file = port_file
        self._port = port

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._port_file is not None and self.started:
            write_port_file(self._port_file, self._port)


LOCK_WAIT_S = 30.0


class DataDirBusy(RuntimeError):
    """Another service process owns the data directory; two would run the same tasks twice."""


def lock_data_dir(data_dir: Path, wait_s: float = LOCK_WAIT_S) -> IO[str]:
    """Hold an exclusive lock on the data dir for the life of the process.

    Waits a little, because a restarted service may race the exit of the one it replaces.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(data_dir / "service.lock", "a+")  # noqa: SIM115 - held until exit
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                handle.close()
                raise DataDirBusy(
                    f"another img2svg service is using {data_dir}; stop it or use another "
                    "--data-dir"
                ) from None
            time.sleep(0.2)
        else:
            # Written in place, not with fsutil.atomic_write: a rename would put a new, unlocked
            # file at this path while we hold the lock on the old one, so a second service could
            # lock it too. The pid is only informational.
            handle.seek(0)
            handle.truncate()  # only once it is ours: the holder's pid stays readable till then
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            return handle


def exit_with_parent(server: uvicorn.Server, parent_pid: int) -> None:
    """Shut down gracefully once the parent process is gone (we get re-parented)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        logging.getLogger("img2svg.service").warning("parent process gone; shutting down")
        server.should_exit = True

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(
    config: ServiceConfig,
    host: str = "127.0.0.1",
    port: int = 8000,
    port_file: Path | None = None,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    lock = lock_data_dir(Path(config.data_dir))
    sock = bind(host, port)
    actual_port = sock.getsockname()[1]
    uv_config = uvicorn.Config(
        create_app(config),
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=5,
    )
    server = PortFileServer(uv_config, port_file, actual_port)
    log = logging.getLogger("img2svg.service")
    log.info("img2svg service on http://%s:%d (data dir %s)", host, actual_port, config.data_dir)
    if warning := open_access_warning(sock, config):
        log.warning("%s", warning)
    if parent := os.environ.get(PARENT_PID_ENV):
        exit_with_parent(server, int(parent))
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        lock.close()
