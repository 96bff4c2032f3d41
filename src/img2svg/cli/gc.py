"""`img2svg gc`: remove what killed runs left behind, never what a live run uses.

Every run already does this when it starts; `gc` is for a disk to be freed now, or an output
no run will touch again soon.
"""

from __future__ import annotations

import argparse
import os


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "gc",
        help="remove the workspaces and temporary files of runs that were killed",
        description=(
            "Remove run workspaces (<ledger dir>/runs/*.sqlite3) whose run is gone, and hidden "
            "temporary files a killed writer left in <out>/svgs/. A live run's files are never "
            "touched: its workspace is leased, and temporary files are only removed while no "
            "run holds the output."
        ),
    )
    p.add_argument("--out", default="out", help="the run's output directory (default: out)")
    p.add_argument(
        "--ledger",
        metavar="LOCATION",
        help="the ledger's location, as given to convert (default: beside --out, or "
        "$IMG2SVG_LEDGER_URL)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from img2svg.stores.ledger import Ledger, RunInProgress
    from img2svg.stores.leftovers import sweep_temporary, sweep_workspaces
    from img2svg.stores.outputs import OutputStore
    from img2svg.stores.placement import ledger_location, workspace_dir

    outputs = OutputStore(args.out)
    ledger = ledger_location(args.ledger, outputs)
    swept = sweep_workspaces(workspace_dir(ledger))
    busy = False
    if not outputs.is_local or os.path.isdir(outputs.root):  # nothing to open for no output
        try:
            with Ledger(ledger) as book, book.run_lock(outputs.out):
                sweep_temporary(outputs, swept)
        except RunInProgress:
            busy = True
    print(
        f"removed {len(swept.workspaces)} workspaces and {len(swept.temporary)} temporary files "
        f"({swept.freed_bytes / 1e6:.1f} MB)"
    )
    if swept.live:
        print(f"kept {len(swept.live)} workspaces of runs still going")
    if busy:
        print(f"a run is writing to {outputs.out}: its temporary files were left alone")
    return 0
