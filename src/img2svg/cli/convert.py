"""`img2svg convert`: run the conversion flow on a manifest, with a progress bar and a summary."""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import nullcontext
from typing import Any


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a ratio between 0 and 1")
    return value


def add_parser(commands: argparse._SubParsersAction) -> None:
    from img2svg.stores.placement import SHARD_DEPLOYMENT

    p = commands.add_parser(
        "convert",
        help="convert every image of a manifest to SVG (runs the Prefect flow)",
        description=(
            "Read a CSV or Parquet manifest of images, convert each to SVG through a "
            "HiDream-compatible API, and write svgs/, results.parquet, results.csv and "
            "failures.csv to --out. With no --api-url and no token, a local img2svg service is "
            "started for the run (the embedded default)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("manifest", help="CSV or Parquet manifest: local path or fsspec URL (s3://...)")
    p.add_argument("--out", default="out", help="output directory or fsspec URL")
    p.add_argument(
        "--mode",
        choices=["fast", "slow"],
        default="fast",
        help="fast: small files; slow: higher fidelity",
    )
    p.add_argument(
        "--api-url",
        help="base URL of a HiDream-compatible API (also $HIDREAM_API_URL); the token comes "
        "from $HIDREAM_API_TOKEN and goes to this URL",
    )
    p.add_argument(
        "--token-block",
        metavar="NAME",
        help="Prefect Secret block holding the API token (instead of the environment), sent "
        'only to its own API: JSON {"api_url": ..., "token": ...}, or a plain token for '
        "HiDream; another --api-url is refused",
    )
    p.add_argument(
        "--image-column",
        default="image_url",
        help="manifest column with the image URL, path (relative to the manifest) or data: URI",
    )
    p.add_argument(
        "--id-column",
        help="manifest column with unique row ids (default: a stable hash of the image reference)",
    )
    p.add_argument(
        "--version-column",
        help="manifest column that changes when an image URL's content does (etag, updated_at, "
        "checksum): with the URL, it tells an unchanged image without any network",
    )
    p.add_argument(
        "--fingerprint",
        choices=["url", "head"],
        default="url",
        help="how an image URL is told unchanged: url (the URL and --version-column) or head "
        "(also a HEAD request's ETag / Last-Modified for each URL)",
    )
    p.add_argument(
        "--batch-size",
        type=_positive_int,
        default=10_000,
        help="rows per chunk: what one Prefect task plans, submits or polls",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        help="HTTP requests in flight at once across the run",
    )
    p.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_MINUTE",
        help="submissions per minute (default: 20 for a remote API as HiDream allows, "
        "unlimited for the embedded service; 0 = unlimited)",
    )
    p.add_argument(
        "--max-in-flight",
        type=_positive_int,
        metavar="N",
        help="tasks in flight on the API at once (HiDream: 1-10 by account tier); "
        "default: learned from its 429 answers",
    )
    p.add_argument(
        "--poll-timeout",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="a row still unfinished this long after submission is timed_out",
    )
    p.add_argument(
        "--max-failure-ratio",
        type=_ratio,
        default=0.25,
        metavar="R",
        help="exit non-zero (flow run Failed) when more than this share of rows fail",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="convert every row again, even images unchanged since they last succeeded "
        "(pays for every task again)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print how many tasks would be submitted (the cost) and submit nothing",
    )
    p.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="submit at most N new tasks in this run; the remaining rows are 'skipped' and the "
        "next run continues with them",
    )
    p.add_argument(
        "--resubmit-unconfirmed",
        action="store_true",
        help="submit again the rows reported 'unconfirmed' (sent earlier, answer lost, maybe "
        "billed) and nothing else; first check the account's task list for them",
    )
    p.add_argument(
        "--allow-local-paths",
        action="append",
        metavar="DIR",
        help="a folder local images may be read from besides the manifest's own (repeatable); "
        "a row naming a local file anywhere else is invalid and never read",
    )
    p.add_argument(
        "--ledger",
        metavar="LOCATION",
        help="the record of what was submitted and paid: a SQLite path (default: beside --out) "
        "or postgresql://user[:password]@host/db shared by every machine (also "
        "$IMG2SVG_LEDGER_URL); a password given here stays in this process's environment",
    )
    p.add_argument(
        "--ledger-block",
        metavar="NAME",
        help="Prefect Secret block holding the ledger's URL (instead of --ledger)",
    )
    p.add_argument(
        "--shards",
        type=_positive_int,
        default=1,
        metavar="N",
        help="split the catalog into N shards, each a flow run of the shard deployment on the "
        "work pool (PREFECT_API_URL must point at the server with the deployments and "
        "workers); needs a PostgreSQL --ledger and an --out every worker reaches (s3://... or "
        "an absolute path on a shared filesystem)",
    )
    p.add_argument(
        "--shard-deployment",
        default=SHARD_DEPLOYMENT,
        metavar="FLOW/DEPLOYMENT",
        help="the deployment the shards run as",
    )
    p.add_argument(
        "--no-score",
        dest="score",
        action="store_false",
        help="do not score the SVGs against their sources (no ssim/psnr/paths, no thumbnails "
        "in report.html): saves the CPU it takes",
    )
    p.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if not args.verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_LOG_PRINTS", "false")
    # A run on a machine without internet must not log a failed telemetry call.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The pipeline's own logs (img2svg.*: retries, refused tokens) go to the flow run's logs.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "img2svg")
    from rich.console import Console

    from img2svg.cli.progress_bar import ProgressBar
    from img2svg.stage.manifest import ManifestError, open_manifest
    from img2svg.stores.placement import ShardingRefused

    console = Console(stderr=True)  # progress and errors
    out = Console()  # the summary, which scripts may capture
    params: dict[str, Any] = {
        "manifest": args.manifest,
        "out": args.out,
        "mode": args.mode,
        "api_url": args.api_url,
        "token_block": args.token_block,
        "image_column": args.image_column,
        "id_column": args.id_column,
        "version_column": args.version_column,
        "fingerprint": args.fingerprint,
        "batch_size": args.batch_size,
        "concurrency": args.concurrency,
        "rate_limit": args.rate_limit,
        "max_in_flight": args.max_in_flight,
        "poll_timeout": args.poll_timeout,
        "max_failure_ratio": args.max_failure_ratio,
        "force": args.force,
        "dry_run": args.dry_run,
        "limit": args.limit,
        "resubmit_unconfirmed": args.resubmit_unconfirmed,
        "allow_local_paths": args.allow_local_paths,
        "ledger": _ledger_parameter(args.ledger),
        "ledger_block": args.ledger_block,
        "shards": args.shards,
        "shard_deployment": args.shard_deployment,
        "score": args.score,
    }
    try:  # a manifest that cannot be read is one clear message, before Prefect starts
        open_manifest(args.manifest, args.image_column, args.id_column, args.version_column)
        _check_shards(args)
    except (ManifestError, ShardingRefused) as exc:
        console.print(f"[red]img2svg convert:[/red] {exc}")
        return 2
    from img2svg.cli.prefect_api import temporary_api_if_needed

    with temporary_api_if_needed() as api:  # boots while the pipeline is imported
        from flows.convert import convert

        with api.settings() if api is not None else nullcontext():
            if args.dry_run:
                with console.status("planning (nothing will be submitted)"):
                    state = convert(**params, return_state=True)
            else:
                with ProgressBar(console) as bar:
                    state = convert(**params, return_state=True)
                    bar.finish()
    try:
        summary = state.result(raise_on_failure=False)
    except Exception as exc:  # the flow crashed before producing a summary
        summary = exc
    if isinstance(summary, BaseException):
        from img2svg.convert.backend import TokenBindingError

        reason = (
            summary
            if isinstance(summary, ManifestError | TokenBindingError | ShardingRefused)
            else f"{type(summary).__name__}: {summary}"
        )
        console.print(f"[red]img2svg convert failed:[/red] {reason}")
        return 2
    if args.dry_run:
        _print_plan(out, summary)
        return 0
    _print_summary(out, summary, state)
    return 0 if state.is_completed() else 1


def _ledger_parameter(ledger: str | None) -> str | None:
    """A flow parameter is shown in the Prefect UI: a password in --ledger goes to this
    process's environment, where the flow (and libpq) find it, and the parameter goes without."""
    from img2svg.stores.placement import LEDGER_URL_ENV, without_password

    if ledger is None:
        return None
    bare = without_password(ledger)
    if bare != ledger:
        os.environ[LEDGER_URL_ENV] = ledger
    return bare


def _check_shards(args: argparse.Namespace) -> None:
    """What --shards needs, checked before anything starts (the flow checks it again)."""
    from img2svg.stores.placement import LEDGER_URL_ENV, ShardingRefused, check_shardable

    if args.shards < 2 or args.dry_run:
        return
    if not os.environ.get("PREFECT_API_URL"):
        raise ShardingRefused(
            f"--shards {args.shards} runs each shard as a flow run of {args.shard_deployment!r} "
            "on a work pool: set PREFECT_API_URL to the Prefect server where `prefect deploy "
            "--all` was run and workers are started (README, 'Scale out')"
        )
    if not args.ledger_block:  # a block's URL is read by the flow
        ledger = args.ledger or os.environ.get(LEDGER_URL_ENV) or "(the default SQLite file)"
        check_shardable(args.manifest, args.out, ledger, args.shards)


def _print_plan(console: Any, counts: dict[str, int]) -> None:
    from rich.table import Table

    table = Table(title="dry run: nothing was submitted", show_edge=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, n in counts.items():
        table.add_row(name.replace("_", " "), str(n))
    console.print(table)
    console.print(f"Cost of this run: {counts['tasks_to_submit']} new tasks.")


def _print_summary(console: Any, summary: Any, state: Any) -> None:
    from rich.table import Table

    table = Table(title=f"{summary.total} rows", show_edge=False)
    table.add_column("status")
    table.add_column("rows", justify="right")
    for status, n in summary.counts.items():
        if n:
            table.add_row(status, str(n))
    console.print(table)
    if summary.reused:
        console.print(
            f"{summary.reused} rows reused an SVG (unchanged since an earlier run, or a "
            "duplicate image): no new task"
        )
    console.print(f"SVGs:      {summary.out}/svgs/")
    console.print(f"Results:   {summary.results_parquet}  {summary.results_csv}")
    console.print(f"Failures:  {summary.failures_csv}")
    if summary.report_html:
        console.print(f"Report:    {summary.report_html}")
    if summary.flags:
        flags = ", ".join(f"{n} {name}" for name, n in summary.flags.items())
        console.print(f"Flagged:   {flags}")
    if summary.top_failures:
        console.print("Most common failure reasons:")
        for status, error, n in summary.top_failures[:5]:
            console.print(f"  {n:>5}  {status:<9} {error}")
    if not state.is_completed():
        console.print(f"[red]Run failed:[/red] {state.message}")
    sys.stdout.flush()
