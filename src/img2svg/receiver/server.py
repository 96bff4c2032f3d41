"""Run the callback receiver with uvicorn: from `img2svg receive`, or as the always-on
`img2svg-receive` Prefect deployment (flows/receive.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import uvicorn

from img2svg.receiver.app import ReceiverConfig, create_app
from img2svg.service.server import PortFileServer, bind
from img2svg.stores.ledger import Ledger, describe

log = logging.getLogger("img2svg.receiver")


def serve_receiver(
    config: ReceiverConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    port_file: Path | None = None,
    log_level: str = "info",
) -> None:
    """Serve until stopped. The ledger is opened (created or migrated) first, so a wrong
    location is one LedgerUnavailable before anything listens, and an OSError for the port."""
    Ledger(config.ledger).close()
    sock = bind(host, port)
    actual = sock.getsockname()[1]
    # No access log: each callback's path holds its token.
    server = PortFileServer(
        uvicorn.Config(create_app(config), log_level=log_level, access_log=False),
        port_file,
        actual,
    )
    log.info("receiving callbacks on http://%s:%d/<token> into %s", host, actual,
             describe(config.ledger))  # fmt: skip
    asyncio.run(server.serve(sockets=[sock]))
