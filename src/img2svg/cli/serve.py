"""`img2svg serve`: the HiDream-compatible service on this machine."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from img2svg.engine.trace import EngineLimits
from img2svg.service.config import FaultConfig, ServiceConfig, usable_cpus

TOKENS_ENV = "IMG2SVG_SERVE_TOKENS"


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability between 0 and 1")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "serve",
        help="run the local HiDream-compatible img2svg service",
        description=(
            "Serve HiDream's img2svg async interface on this machine, vectorizing with vtracer. "
            "Tasks and SVGs persist under --data-dir; a restart resumes unfinished tasks."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    p.add_argument("--port-file", type=Path, help="write the port here once listening")
    p.add_argument("--data-dir", type=Path, default=Path(".img2svg-service"), help="task store")
    p.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="T",
        help="accepted bearer token (repeatable). Visible to every local user in `ps`: prefer "
        f"--token-file or ${TOKENS_ENV} (comma-separated). With no token from any of the "
        "three, any token is accepted.",
    )
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="file of accepted bearer tokens, one per line; blank lines and # comments ignored",
    )
    p.add_argument(
        "--workers", type=_positive_int, default=os.cpu_count() or 1, help="vectorizer processes"
    )
    p.add_argument(
        "--rate-limit",
        type=_positive_int,
        metavar="PER_MINUTE",
        help="submissions per minute per account (HiDream: 20); default unlimited",
    )
    p.add_argument(
        "--max-concurrency",
        type=_positive_int,
        metavar="N",
        help="tasks in progress per account (HiDream: 1-10); default unlimited",
    )
    p.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="fault injection: added processing time per task",
    )
    p.add_argument(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="fault injection: fraction of API requests answered 500/503, "
        "answered slowly, or dropped after processing",
    )
    p.add_argument(
        "--fail-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="fault injection: fraction of tasks ending failed (status 3)",
    )
    p.add_argument(
        "--reject-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="fault injection: fraction of tasks ending rejected (status 4)",
    )
    p.add_argument("--seed", type=int, help="seed making fault injection deterministic")
    p.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="fetch image URLs and call notify_urls on loopback/private networks",
    )
    p.add_argument(
        "--no-idempotency",
        action="store_true",
        help="behave as HiDream documents: ignore Idempotency-Key, so every processed POST "
        "creates (bills) a new task; /healthz then says idempotency_keys: false",
    )
    p.add_argument(
        "--task-timeout",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="a conversion running longer is killed and its task fails",
    )
    p.add_argument(
        "--max-image-bytes",
        type=_positive_int,
        default=20 * 1024 * 1024,
        metavar="BYTES",
        help="largest accepted image file",
    )
    p.add_argument(
        "--max-concurrent-decodes",
        type=_positive_int,
        default=usable_cpus(),
        metavar="N",
        help="submitted images decoded at once to validate them (each takes up to ~160 MB); "
        f"others wait up to {ServiceConfig.decode_wait_s:g} s, then get 503",
    )
    p.add_argument(
        "--fetch-timeout",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="time allowed to download an image URL",
    )
    p.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from img2svg.service.auth import TokenFileError, read_token_file
    from img2svg.service.server import DataDirBusy, serve

    env_tokens = [t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]
    try:
        file_tokens = read_token_file(args.token_file) if args.token_file else frozenset()
    except TokenFileError as exc:
        print(f"img2svg serve: {exc}", file=sys.stderr)
        return 2
    config = ServiceConfig(
        data_dir=args.data_dir,
        tokens=frozenset([*args.token, *env_tokens, *file_tokens]),
        rate_limit_per_minute=args.rate_limit,
        max_concurrency=args.max_concurrency,
        allow_private_urls=args.allow_private_urls,
        idempotency_keys=not args.no_idempotency,
        workers=args.workers,
        max_image_bytes=args.max_image_bytes,
        max_concurrent_decodes=args.max_concurrent_decodes,
        fetch_timeout_s=args.fetch_timeout,
        engine=EngineLimits(timeout_s=args.task_timeout),
        faults=FaultConfig(
            latency_s=args.latency,
            fault_rate=args.fault_rate,
            fail_rate=args.fail_rate,
            reject_rate=args.reject_rate,
            seed=args.seed,
        ),
    )
    try:
        serve(
            config,
            host=args.host,
            port=args.port,
            port_file=args.port_file,
            log_level=args.log_level,
        )
    except DataDirBusy as exc:
        print(f"img2svg serve: {exc}", file=sys.stderr)
        return 2
    return 0
