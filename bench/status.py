"""`img2svg status` on a million-row catalog: wall time and peak memory (budget: 10 s, 1 GiB).

    uv run python bench/status.py [--rows 1000000]

Writes a manifest of N rows, a results.parquet of N rows (70 % succeeded, the rest spread over
the other statuses, 20 distinct failure reasons) and a ledger of N submissions, as a catalog
half-way through its nights would have; nothing is converted. Then runs `img2svg status --json`
as a process and prints its time, its peak RSS and the figures it gave.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from img2svg.run.rows import RESULT_COLUMNS
from img2svg.stores.ledger import Ledger, submission_key

STATUSES = ["succeeded"] * 14 + [
    "skipped",
    "failed",
    "unconfirmed",
    "error",
    "invalid",
    "timed_out",
]


def build(root: Path, rows: int) -> tuple[Path, Path]:
    images = [f"https://cdn.example.com/catalog/{i}.png" for i in range(rows)]
    manifest = root / "catalog.csv"
    pacsv.write_csv(pa.table({"image_url": images}), manifest)
    out = root / "out"
    out.mkdir()
    status = [STATUSES[i % len(STATUSES)] for i in range(rows)]
    error = [None if s == "succeeded" else f"reason {i % 20} of {s}" for i, s in enumerate(status)]
    columns = {name: pa.nulls(rows, pa.string()) for name in RESULT_COLUMNS}
    columns |= {"row_id": pa.array([f"r{i}" for i in range(rows)]), "image": pa.array(images),
                "status": pa.array(status), "error": pa.array(error)}  # fmt: skip
    pq.write_table(pa.table(columns), out / "results.parquet")
    ledger = out / ".img2svg" / "ledger.sqlite3"
    Ledger(ledger).close()  # the schema
    import sqlite3

    with sqlite3.connect(ledger) as db:
        db.executemany(
            "INSERT INTO submissions (key, fingerprint, mode, backend, idem_key, state, task_id, "
            "created_at, paid) VALUES (?, ?, 'fast', 'api', ?, ?, ?, 0, ?)",
            (
                (submission_key(str(i), "fast"), str(i), str(i), s, f"t{i}", int(s != "skipped"))
                for i, s in enumerate(status)
            ),
        )
    return manifest, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.monotonic()
        manifest, out = build(Path(folder), args.rows)
        print(f"built {args.rows} rows in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "img2svg.cli", "status", str(manifest), "--out", str(out),
             "--json", "--rate-limit", "20"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        took = time.monotonic() - started
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        figures = json.loads(done.stdout)
    print(f"img2svg status: {took:.2f} s, peak RSS {peak_mib:.0f} MiB")
    print(json.dumps({k: figures[k] for k in ("rows", "by_status", "tasks_paid", "rows_left",
                                               "tasks_left", "eta_seconds")}))  # fmt: skip


if __name__ == "__main__":
    main()
