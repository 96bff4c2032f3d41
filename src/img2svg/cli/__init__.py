"""The `img2svg` command: `serve` runs the local service, `convert` runs the pipeline, `receive`
records the API's task callbacks, `status` says where a catalog stands across runs, `gc` removes
what killed runs left behind."""

from __future__ import annotations

import argparse
import sys

from img2svg import __version__
from img2svg.cli import gc, receive, serve, status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="img2svg",
        description="Turn catalogs of raster images into SVG vectors.",
    )
    parser.add_argument("--version", action="version", version=f"img2svg {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_parser(commands)
    try:
        from img2svg.cli import convert
    except ImportError:  # pragma: no cover - the pipeline ships with the package
        convert = None
    if convert is not None:
        convert.add_parser(commands)
    gc.add_parser(commands)
    receive.add_parser(commands)
    status.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
