"""`img2svg receive`: the callback receiver HiDream POSTs each task's end to (docs/callbacks.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "receive",
        help="receive the API's task callbacks (notify_url) into the ledger",
        description=(
            "Record the callbacks the API POSTs when a task ends (convert --notify-url), so a "
            "submission whose answer was lost gets its task id without being paid for again. "
            "Give it the ledger the runs use."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (0: any free port)")
    p.add_argument("--port-file", type=Path, help="write the port here once listening")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--ledger",
        metavar="LOCATION",
        help="the runs' ledger: a SQLite path or postgresql://... (default: "
        "$IMG2SVG_LEDGER_URL, else the one beside --out)",
    )
    where.add_argument("--out", help="the runs' output directory, whose ledger to use")
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 1024,
        metavar="BYTES",
        help="larger callback bodies are refused (413)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import os

    from img2svg.receiver.app import ReceiverConfig
    from img2svg.receiver.server import serve_receiver
    from img2svg.stores.ledger import LedgerUnavailable
    from img2svg.stores.outputs import OutputStore
    from img2svg.stores.placement import LEDGER_URL_ENV, ledger_location

    if not (args.ledger or args.out or os.environ.get(LEDGER_URL_ENV)):
        print(
            "img2svg receive: give --ledger (or --out, or set IMG2SVG_LEDGER_URL)", file=sys.stderr
        )
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    location = ledger_location(args.ledger, OutputStore(args.out or "out"))
    config = ReceiverConfig(ledger=location, max_body_bytes=args.max_body_bytes)
    try:
        serve_receiver(
            config,
            host=args.host,
            port=args.port,
            port_file=args.port_file,
            log_level=args.log_level,
        )
    except LedgerUnavailable as exc:
        print(f"img2svg receive: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"img2svg receive: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0
