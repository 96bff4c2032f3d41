"""Summaries of a finished run: counts by status, the commonest failure reasons, where it all is."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

from img2svg.run.rows import RowStatus

STATUS_ORDER = [str(s) for s in RowStatus if s.final]


@dataclass(frozen=True)
class RunSummary:
    total: int
    counts: dict[str, int]
    failure_ratio: float
    out: str
    results_parquet: str
    results_csv: str
    failures_csv: str
    top_failures: list[tuple[str, str, int]] = field(default_factory=list)
    reused: int = 0  # succeeded at no new cost: an earlier run's SVG, or a duplicate image
    flags: dict[str, int] = field(default_factory=dict)  # rows by flag (low_fidelity...)
    report_html: str | None = None  # the page showing every row, worst first
    catalog: str | None = None  # markdown: where the catalog stands across runs (finish.catalog)
    stopped_by: str | None = None  # a reason every shard met: the run ends on it (CLI exit 2)

    @property
    def succeeded(self) -> int:
        return self.counts.get(str(RowStatus.SUCCEEDED), 0)


def counts_table(summary: RunSummary) -> list[dict[str, object]]:
    return [
        {"status": status, "rows": n, "share": f"{n / summary.total:.1%}" if summary.total else "-"}
        for status, n in summary.counts.items()
    ]


def markdown(summary: RunSummary) -> str:
    lines = [
        "# img2svg run",
        "",
        f"**{summary.succeeded} of {summary.total} rows succeeded** "
        f"(failure ratio {summary.failure_ratio:.1%}); {summary.reused} of them cost no new "
        "task (unchanged since an earlier run, or a duplicate image).",
        "",
        "| status | rows |",
        "|---|---:|",
        *(f"| {status} | {n} |" for status, n in summary.counts.items() if n),
        "",
        "## Outputs",
        "",
        f"- SVGs: `{summary.out}/svgs/`",
        f"- Results: `{summary.results_parquet}` and `{summary.results_csv}`",
        f"- Failure report: `{summary.failures_csv}`",
    ]
    if summary.report_html:
        lines.append(f"- **[The report, worst conversions first]({_link(summary.report_html)})**")
    if summary.flags:
        lines += ["", "## Flags", "", "| flag | rows |", "|---|---:|"]
        lines += [f"| {name} | {n} |" for name, n in summary.flags.items()]
    if summary.top_failures:
        lines += [
            "",
            "## Most common failure reasons",
            "",
            "| rows | status | reason |",
            "|---:|---|---|",
        ]
        for status, error, n in summary.top_failures:
            lines.append(f"| {n} | {status} | {error.replace('|', '/') or '-'} |")
    if summary.catalog:
        lines += ["", summary.catalog.rstrip("\n")]
    return "\n".join(lines) + "\n"


def _link(location: str) -> str:
    """A link the Prefect UI can follow: a local path becomes a file:// URL."""
    if "://" in location:
        return location
    return "file://" + quote(location)
