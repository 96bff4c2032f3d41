"""The callback receiver as an always-on Prefect deployment (`img2svg-receive` in prefect.yaml).

Its schedule starts it every few minutes and its concurrency limit cancels a start while one
runs, so a receiver that died is back within minutes, on any worker of the pool that the
public URL (`--notify-url`) reaches. It serves until its flow run is cancelled.
"""

from __future__ import annotations

from prefect import flow

from img2svg.receiver.app import MAX_BODY_BYTES, ReceiverConfig
from img2svg.receiver.server import serve_receiver
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import ledger_location


@flow(name="img2svg-receive", log_prints=False)
def receive(
    ledger: str | None = None,
    out: str = "out",
    host: str = "127.0.0.1",
    port: int = 8765,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> None:
    """Record the API's task callbacks (notify_url) in the runs' ledger.

    Args:
        ledger: The runs' ledger (default: $IMG2SVG_LEDGER_URL on the worker, else the one
            beside `out`); a PostgreSQL password comes from the worker (PGPASSWORD, ~/.pgpass).
        out: The runs' output folder, whose default ledger to use when no ledger is given.
        host: The address to listen on: loopback behind a reverse proxy, else 0.0.0.0.
        port: The port the proxy (or the public URL) forwards to.
        max_body_bytes: Larger callback bodies are refused (413).
    """
    location = ledger_location(ledger, OutputStore(out))
    serve_receiver(ReceiverConfig(location, max_body_bytes), host=host, port=port)
