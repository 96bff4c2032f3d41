"""Where a catalog stands across its runs: `img2svg status`, and a section of each run's report.

A catalog of a million rows at HiDream's 20 tasks a minute spans weeks of nightly runs, so its
owner asks what no single run's report says: how many rows are done, what was paid in all (and
paid again by choice), what is left, and when it will be finished at this quota. The rows come
from the last run's `results.parquet` (rows the manifest holds beyond it are `pending`), the
money from the ledger, the pace from the quota given or, else, from what the last run measured.
Memory holds three columns of the results, never the rows.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from img2svg.run.rows import RowStatus
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore

# Rows no run will convert without being asked: a moderation refusal (--force) or bad input.
NOT_LEFT = frozenset({str(RowStatus.SUCCEEDED), str(RowStatus.REJECTED), str(RowStatus.INVALID)})
PENDING = "pending"  # in the manifest, not yet in any results
TOP_REASONS = 10


@dataclass(frozen=True)
class Quota:
    """The account's pace, when the user knows it (`--rate-limit`, `--max-in-flight`)."""

    rate_per_minute: float | None = None
    max_in_flight: int | None = None


@dataclass(frozen=True)
class CatalogStatus:
    rows: int
    by_status: dict[str, int]
    top_failures: list[tuple[str, str, int]]
    tasks_paid: int  # tasks the API created for this ledger's images, every run together
    tasks_paid_last_run: int | None
    paid_again_by_choice: int  # of tasks_paid: sent again by --force or --resubmit-unconfirmed
    maybe_paid: int  # answers lost with no callback yet: a task may exist (and be billed)
    callbacks_since_last_run: int  # lost answers recovered after it: the next run polls them
    rows_left: int  # not succeeded, and not refused for good (rejected, invalid)
    tasks_left: int  # distinct images among them (rows not yet run counted one each)
    eta_seconds: float | None  # at the quota: None when no pace is known
    eta_basis: str
    last_run: dict[str, Any] | None = field(default=None)

    def as_json(self) -> dict[str, Any]:
        found = asdict(self)
        found["top_failures"] = [
            {"status": s, "reason": r, "rows": n} for s, r, n in self.top_failures
        ]
        return found

    def markdown(self) -> str:
        done = self.by_status.get(str(RowStatus.SUCCEEDED), 0)
        lines = [
            "## The catalog across runs",
            "",
            f"**{done} of {self.rows} rows succeeded**; {self.rows_left} rows left "
            f"({self.tasks_left} tasks), {_eta(self.eta_seconds)} ({self.eta_basis}).",
            "",
            "| tasks paid | in the last run | paid again by choice | maybe paid (unconfirmed) |",
            "|---:|---:|---:|---:|",
            f"| {self.tasks_paid} | {_or_dash(self.tasks_paid_last_run)} | "
            f"{self.paid_again_by_choice} | {self.maybe_paid} |",
            "",
            "| status | rows |",
            "|---|---:|",
            *(f"| {status} | {n} |" for status, n in self.by_status.items()),
        ]
        if self.callbacks_since_last_run:
            lines += [
                "",
                f"{self.callbacks_since_last_run} lost answers were recovered by callbacks "
                "since the last run: the next run downloads them, unpaid.",
            ]
        if self.top_failures:
            lines += ["", "| rows | status | reason |", "|---:|---|---|"]
            lines += [
                f"| {n} | {s} | {r.replace('|', '/') or '-'} |" for s, r, n in self.top_failures
            ]
        return "\n".join(lines) + "\n"


def catalog_status(
    manifest_rows: int, outputs: OutputStore, ledger: Ledger | None, quota: Quota = Quota()
) -> CatalogStatus:
    """`ledger` None: no run has made one yet (nothing paid)."""
    by_status, reasons, left_images, in_results = _results(outputs)
    pending = max(0, manifest_rows - in_results)
    if pending:
        by_status[PENDING] = by_status.get(PENDING, 0) + pending
    money = ledger.paid() if ledger else {"paid": 0, "paid_again": 0, "unconfirmed": 0}
    recorded = ledger.last_run(outputs.out) if ledger else None
    last = json.loads(recorded[1]) if recorded else None
    rows_left = sum(n for status, n in by_status.items() if status not in NOT_LEFT)
    tasks_left = left_images + pending
    pace, basis = _pace(quota, last)
    return CatalogStatus(
        rows=manifest_rows,
        by_status=dict(sorted(by_status.items(), key=lambda item: -item[1])),
        top_failures=reasons,
        tasks_paid=money["paid"],
        tasks_paid_last_run=None if last is None else int(last.get("tasks_paid", 0)),
        paid_again_by_choice=money["paid_again"],
        maybe_paid=money["unconfirmed"],
        callbacks_since_last_run=ledger.callbacks_since(recorded[0]) if ledger and recorded else 0,
        rows_left=rows_left,
        tasks_left=tasks_left,
        eta_seconds=0.0 if not tasks_left else (tasks_left / pace if pace else None),
        eta_basis=basis,
        last_run=last,
    )


def _results(outputs: OutputStore) -> tuple[dict[str, int], list[tuple[str, str, int]], int, int]:
    """(rows by status, commonest failure reasons, distinct images left, rows) of the last
    results, read column by column."""
    if not outputs.exists("results.parquet"):
        return {}, [], 0, 0
    with outputs.open("results.parquet") as handle:
        table = pq.read_table(handle, columns=["status", "error", "image"])
    status = table.column("status")
    by_status = {
        str(entry["values"]): int(entry["counts"]) for entry in pc.value_counts(status).to_pylist()
    }
    failed = pc.invert(pc.is_in(status, value_set=pa.array([str(RowStatus.SUCCEEDED)])))
    failures = table.filter(failed)
    reasons = Counter(
        zip(failures.column("status").to_pylist(), failures.column("error").to_pylist(),
            strict=True)
    )  # fmt: skip
    top = [(s, r or "", n) for (s, r), n in reasons.most_common(TOP_REASONS)]
    left = pc.invert(pc.is_in(status, value_set=pa.array(sorted(NOT_LEFT))))
    images = pc.count_distinct(table.filter(left).column("image")).as_py()
    return by_status, top, int(images), table.num_rows


def _pace(quota: Quota, last: dict[str, Any] | None) -> tuple[float | None, str]:
    """Tasks per second at the account's quota, and what that figure rests on."""
    task_s = (last or {}).get("mean_task_s")
    bounds: list[tuple[float, str]] = []
    rate = quota.rate_per_minute if quota.rate_per_minute is not None else None
    if rate:
        bounds.append((rate / 60, f"{rate:g} submissions a minute"))
    if quota.max_in_flight and task_s:
        bounds.append(
            (quota.max_in_flight / task_s, f"{quota.max_in_flight} in flight × {task_s:.1f} s")
        )
    if bounds:
        return min(bounds)
    if last and last.get("tasks_paid") and last.get("span_s"):
        measured = last["tasks_paid"] / last["span_s"]
        return measured, f"the last run's pace, {measured * 60:.1f} tasks a minute"
    return None, "no pace known: give --rate-limit or --max-in-flight, or run once"


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "no ETA"
    if seconds < 120:
        return f"ETA {seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"ETA {seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"ETA {seconds / 3600:.1f} h"
    return f"ETA {seconds / 86400:.1f} days"


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)
