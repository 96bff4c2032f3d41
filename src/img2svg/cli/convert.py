"""`img2svg convert`: run the conversion flow on a manifest, with a progress bar and a summary."""

from __future__ import annotations

import argparse
import os
import sys
import typing
from contextlib import nullcontext
from typing import Annotated, Any

# Flags that read better with a placeholder than with their upper-cased name.
METAVARS = {
    "token_block": "NAME",
    "rate_limit": "PER_MINUTE",
    "max_in_flight": "N",
    "poll_timeout": "SECONDS",
    "max_failure_ratio": "R",
    "limit": "N",
    "allow_local_paths": "DIR",
    "ledger": "LOCATION",
    "ledger_block": "NAME",
    "shards": "N",
    "shard_deployment": "FLOW/DEPLOYMENT",
    "chunk_size": "N",
    "batch_size": "N",
    "submission_limit": "NAME",
    "order_by": "COLUMN",
    "notify_url": "URL",
    "callback_grace": "SECONDS",
}


class DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default where there is one to show (not None, not a switch's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False) or isinstance(action, argparse._StoreFalseAction):
            return action.help or ""
        return super()._get_help_string(action) or ""


def add_parser(commands: argparse._SubParsersAction) -> None:
    from img2svg.run.parameters import RunParameters

    p = commands.add_parser(
        "convert",
        help="convert every image of a manifest to SVG (runs the Prefect flow)",
        description=(
            "Read a CSV or Parquet manifest of images, convert each to SVG through a "
            "HiDream-compatible API, and write svgs/, results.parquet, results.csv and "
            "failures.csv to --out. With no --api-url and no token, a local img2svg service is "
            "started for the run (the embedded default)."
        ),
        formatter_class=DefaultsShown,
    )
    add_model_options(p, RunParameters, METAVARS)
    p.add_argument("--verbose", action="store_true", help="show Prefect's logs")
    p.set_defaults(handler=run)


def add_model_options(
    parser: argparse.ArgumentParser, model: type[Any], metavars: dict[str, str]
) -> None:
    """One option per field of the model (a required field is positional), its help the
    field's description, its values checked by the field's own type."""
    from pydantic import TypeAdapter, ValidationError

    for name, field in model.model_fields.items():
        flag = "--" + name.replace("_", "-")
        described = (field.description or "").rstrip(".")
        kind = typing.get_origin(field.annotation)
        args = [a for a in typing.get_args(field.annotation) if a is not type(None)]
        if field.is_required():
            parser.add_argument(name, help=described)
        elif field.annotation is bool:
            if field.default:
                parser.add_argument(
                    f"--no-{name.replace('_', '-')}",
                    dest=name,
                    action="store_false",
                    help=f"do not: {described[0].lower()}{described[1:]}",
                )
            else:
                parser.add_argument(flag, action="store_true", help=described)
        elif kind is typing.Literal:
            parser.add_argument(flag, choices=list(args), default=field.default, help=described)
        elif args and typing.get_origin(args[0]) is list:
            parser.add_argument(flag, action="append", metavar=metavars.get(name), help=described)
        else:
            annotated = (
                Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation
            )
            adapter = TypeAdapter(annotated)

            def checked(text: str, adapter: TypeAdapter[Any] = adapter) -> Any:
                try:
                    return adapter.validate_python(text)
                except ValidationError as exc:
                    raise argparse.ArgumentTypeError(exc.errors()[0]["msg"]) from None

            parser.add_argument(
                flag,
                type=checked,
                default=field.default,
                metavar=metavars.get(name),
                help=described,
            )


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
    from img2svg.convert.backend import TokenBindingError
    from img2svg.run.notify import NotifyUrlError, notify_base
    from img2svg.run.parameters import RunParameters
    from img2svg.stage.manifest import ManifestError, open_manifest
    from img2svg.stores.placement import ShardingRefused

    console = Console(stderr=True)  # progress and errors
    out = Console()  # the summary, which scripts may capture
    if args.batch_size is not None:
        console.print("[yellow]--batch-size is deprecated: use --chunk-size[/yellow]")
        args.chunk_size, args.batch_size = args.batch_size, None
    args.ledger = _ledger_parameter(args.ledger)
    params = {name: getattr(args, name) for name in RunParameters.model_fields}
    try:  # a manifest that cannot be read is one clear message, before Prefect starts
        open_manifest(
            args.manifest,
            args.image_column,
            args.id_column,
            args.version_column,
            order_by=args.order_by,
        )
        _check_shards(args)
        notify_base(args.notify_url)
    except (ManifestError, ShardingRefused, NotifyUrlError, TokenBindingError) as exc:
        console.print(f"[red]img2svg convert:[/red] {exc}")
        return 2
    from img2svg.cli.prefect_api import temporary_api_if_needed

    with temporary_api_if_needed() as api:  # boots while the pipeline is imported
        from flows.convert import convert

        if not args.verbose:
            _run_failures_stay_in_the_ui()

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
        from flows.run import RUN_STOPPERS

        stopped = isinstance(summary, RUN_STOPPERS)
        reason = summary if stopped else f"{type(summary).__name__}: {summary}"
        console.print(f"[red]img2svg convert failed:[/red] {reason}")
        return 2
    if args.dry_run:
        _print_plan(out, summary)
        return 0
    _print_summary(out, summary, state)
    return 0 if state.is_completed() else 1


def _run_failures_stay_in_the_ui() -> None:
    """Prefect reports a failed task or flow run with its traceback. That report still goes to
    the run's logs in the UI; the console gets the run's own words instead: each row's reason,
    and one message when the run stops (`--verbose` shows Prefect's too)."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    runs = ("prefect.task_runs", "prefect.flow_runs")

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or not record.name.startswith(runs)

    for name in ("", "prefect", *runs):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.addFilter(keep)


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
    from img2svg.convert.backend import check_shard_credentials
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
    check_shard_credentials(args.api_url, args.token_block)


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
