"""`img2svg status`: where a catalog stands across its runs, read from the ledger and results."""

from __future__ import annotations

import argparse
import json
import sys


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "status",
        help="where a catalog stands: rows by status, tasks paid, rows left and the ETA",
        description=(
            "Read a catalog's last results and its ledger (no Prefect, no API): rows by "
            "status and the commonest failure reasons, tasks paid in all and in the last run, "
            "how many were paid again by choice, the rows left and when they will be done at "
            "the account's quota. Callbacks heard since the last run are applied first."
        ),
    )
    p.add_argument("manifest", help="the catalog's manifest, as given to convert")
    p.add_argument("--out", default="out", help="the catalog's output directory (default: out)")
    p.add_argument(
        "--ledger",
        metavar="LOCATION",
        help="the ledger, as given to convert (default: beside --out, or $IMG2SVG_LEDGER_URL)",
    )
    p.add_argument("--image-column", default="image_url", help="as given to convert")
    p.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_MINUTE",
        help="the account's submissions per minute, for the ETA (HiDream: 20); default: the "
        "last run's measured pace",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        metavar="N",
        help="the account's tasks in flight at once, for the ETA (with the last run's task time)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from img2svg.finish.catalog import Quota, catalog_status
    from img2svg.stage.manifest import ManifestError, column_batches, open_manifest
    from img2svg.stores.ledger import Ledger, LedgerUnavailable, is_postgres
    from img2svg.stores.outputs import OutputStore
    from img2svg.stores.placement import ledger_location

    outputs = OutputStore(args.out)
    location = ledger_location(args.ledger, outputs)
    quota = Quota(args.rate_limit, args.max_in_flight)
    try:
        source = open_manifest(args.manifest, args.image_column)
        rows = sum(batch.num_rows for batch in column_batches(source, [args.image_column]))
        if not is_postgres(location) and not Path(location).exists():
            status = catalog_status(rows, outputs, None, quota)  # no run yet: nothing paid
        else:
            with Ledger(location) as ledger:
                ledger.apply_callbacks()
                status = catalog_status(rows, outputs, ledger, quota)
    except (ManifestError, LedgerUnavailable) as exc:
        print(f"img2svg status: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status.as_json(), indent=2))
    else:
        print(status.markdown(), end="")
    return 0
