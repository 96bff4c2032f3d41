"""--order-by: the order rows are staged and planned in, so which ones --limit takes first."""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from img2svg.plan.chunk import identify_and_plan
from img2svg.plan.decide import PlanOptions
from img2svg.run.settings import RunSettings
from img2svg.stage.manifest import ManifestError, open_manifest
from img2svg.stage.order import in_staged_order, manifest_ranks
from img2svg.stage.staging import stage_rows
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace
from tests.helpers import logo_png


def _csv(tmp_path: Path, column: list[str]) -> Path:
    manifest = tmp_path / "m.csv"
    lines = [f"r{i},{i}.png,{value}\n" for i, value in enumerate(column)]
    manifest.write_text("id,image_url,prio\n" + "".join(lines))
    return manifest


def _order(path: Path, descending: bool = False, shard=None) -> list[int]:
    """The manifest rows (their index) in the requested order."""
    source = open_manifest(str(path), id_column="id", order_by="prio", descending=descending)
    ranks = manifest_ranks(source, shard).tolist()
    kept = [i for i, rank in enumerate(ranks) if rank >= 0]
    return sorted(kept, key=lambda i: ranks[i])


@pytest.mark.parametrize(
    ("column", "ascending", "descending"),
    [
        # Numbers sort numerically; ties keep the manifest's order both ways; missing goes last.
        (["10", "9", "", "1.5", "9", " ", "-2"], [6, 3, 1, 4, 0, 2, 5], [0, 1, 4, 3, 6, 2, 5]),
        # A column holding anything but numbers sorts as strings (code points).
        (["10", "9", "abc", "", "B", "10"], [0, 5, 1, 4, 2, 3], [2, 4, 1, 0, 5, 3]),
        (["b", "a", "", "b", "a"], [1, 4, 0, 3, 2], [0, 3, 1, 4, 2]),
        (["", "", ""], [0, 1, 2], [0, 1, 2]),
    ],
)
def test_csv_values_sort_by_what_they_hold(tmp_path: Path, column, ascending, descending) -> None:
    manifest = _csv(tmp_path, column)
    assert _order(manifest) == ascending
    assert _order(manifest, descending=True) == descending


def test_a_csv_column_whose_type_changes_after_its_first_block_sorts_as_strings(
    tmp_path: Path,
) -> None:
    """pyarrow would guess a CSV column's type from its first block: the column is read as text
    and typed as a whole."""
    column = [str(i) for i in range(60_000)] + ["x"]
    order = _order(_csv(tmp_path, column))
    assert order[:3] == [0, 1, 10] and order[-1] == 60_000  # "x" after every digit


def test_parquet_columns_sort_by_their_type(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(5)],
            "image_url": [f"{i}.png" for i in range(5)],
            "prio": pa.array([3.0, None, math.nan, -1.0, 3.0]),
            "when": pa.array(
                [datetime(2024, 5, d) for d in (9, 1, 30, 2, 1)], type=pa.timestamp("s")
            ),
            "name": ["10", "9", None, "", "1"],  # text of numbers: numerically
            "tags": pa.array([[1], [2], [3], [4], [5]]),
        }
    )
    path = tmp_path / "m.parquet"
    pq.write_table(table, path)

    def order(column: str, descending: bool = False) -> list[int]:
        source = open_manifest(str(path), order_by=column, descending=descending)
        ranks = manifest_ranks(source).tolist()
        return sorted(range(5), key=lambda i: ranks[i])

    assert order("prio") == [3, 0, 4, 1, 2]  # NaN is missing, like null: last
    assert order("prio", descending=True) == [0, 4, 3, 1, 2]
    assert order("when") == [1, 4, 3, 0, 2]
    assert order("name") == [4, 1, 0, 2, 3]
    with pytest.raises(ManifestError, match=r"'tags' holds list<.*> values, which have no order"):
        order("tags")


def test_a_shard_ranks_its_own_rows_only(tmp_path: Path) -> None:
    manifest = _csv(tmp_path, ["5", "4", "3", "2", "1", "0"])
    shards = [_order(manifest, shard=(k, 2)) for k in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(6))
    for rows in shards:
        assert rows == sorted(rows, reverse=True)  # each shard in its own order, ranks dense


def test_a_column_that_does_not_exist_is_named_with_the_ones_that_do(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as refused:
        open_manifest(str(_csv(tmp_path, ["1"])), order_by="nope")
    assert str(refused.value) == (
        f"manifest {tmp_path / 'm.csv'} has no column 'nope' (columns: id, image_url, prio); "
        "name the right one with --order-by"
    )


def _catalog(tmp_path: Path, rows: list[tuple[int, str]]) -> Path:
    """m.csv of (seed, prio) rows r0..rN: equal seeds are the same image."""
    (tmp_path / "images").mkdir(exist_ok=True)
    for seed, _ in rows:
        (tmp_path / "images" / f"{seed}.png").write_bytes(logo_png(24, seed=seed))
    manifest = tmp_path / "m.csv"
    lines = [f"r{i},images/{seed}.png,{prio}\n" for i, (seed, prio) in enumerate(rows)]
    manifest.write_text("id,image_url,prio\n" + "".join(lines))
    return manifest


def _stage_and_plan(
    tmp_path: Path, manifest: Path, chunk_rows: int, limit: int | None, **order
) -> Workspace:
    source = open_manifest(str(manifest), id_column="id", **order)
    work = Workspace(tmp_path / "work.sqlite3")
    staged = stage_rows(work, source, chunk_rows)
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        for chunk in range(staged.chunks):
            asyncio.run(
                identify_and_plan(
                    work,
                    chunk,
                    ledger=ledger,
                    outputs=OutputStore(str(tmp_path / "out")),
                    settings=RunSettings(),
                    options=PlanOptions(mode="fast", backend="local", limit=limit),
                    fingerprint="url",
                )
            )
    return work


def _outcomes(work: Workspace) -> dict[str, tuple[str, str]]:
    """row id -> (the action of its job, the row id of its lead)."""
    return {
        r[0]: (r[1], r[2])
        for r in work.db.execute(
            "SELECT r.row_id, j.action, j.lead_row_id FROM rows r JOIN jobs j ON r.key = j.key"
        )
    }


def test_rows_are_staged_and_planned_in_order_and_the_limit_takes_the_first(
    tmp_path: Path,
) -> None:
    # r1 and r4 show the same image: r1 leads it (first in the manifest), and the job takes
    # its place at r4 (first in the order); r5's missing value goes last.
    manifest = _catalog(tmp_path, [(0, 5), (1, 9), (2, 1), (3, 5), (1, 2), (4, "")])
    work = _stage_and_plan(tmp_path, manifest, chunk_rows=2, limit=3, order_by="prio")

    chunks = [[r.row_id for r in in_staged_order(work, c, work.chunk_rows(c))] for c in range(3)]
    assert chunks == [["r2", "r4"], ["r0", "r3"], ["r1", "r5"]]
    assert [r["row_id"] for batch in work.results() for r in batch] == [f"r{i}" for i in range(6)]
    outcomes = _outcomes(work)
    assert outcomes == {
        "r0": ("submit", "r0"),
        "r1": ("submit", "r1"),  # its job was planned in chunk 0, at r4's place: r1 leads it
        "r2": ("submit", "r2"),
        "r3": ("settled", "r3"),  # the limit of 3 tasks: r2, r4 (with r1), r0
        "r4": ("submit", "r1"),
        "r5": ("settled", "r5"),
    }
    (chunk,) = work.db.execute("SELECT chunk FROM jobs WHERE lead_row_id = 'r1'").fetchone()
    assert chunk == 0  # sent with the first chunk
    assert work.plan_counts() == {
        "tasks_to_submit": 3,
        "rows_to_submit": 4,
        "tasks_to_poll": 0,
        "rows_to_poll": 0,
        "rows_skipped": 2,
    }

    down = tmp_path / "down"
    down.mkdir()
    work = _stage_and_plan(down, manifest, 10, limit=2, order_by="prio", descending=True)
    assert [r.row_id for r in in_staged_order(work, 0, work.chunk_rows(0))] == [
        "r1", "r0", "r3", "r4", "r2", "r5"
    ]  # fmt: skip
    assert {row: action for row, (action, _) in _outcomes(work).items()} == {
        "r0": "submit",
        "r1": "submit",
        "r2": "settled",
        "r3": "settled",  # ties keep the manifest's order: r0 before r3
        "r4": "submit",
        "r5": "settled",
    }


def test_without_an_order_nothing_changes(tmp_path: Path) -> None:
    manifest = _catalog(tmp_path, [(0, 5), (1, 9), (2, 1), (1, 2)])
    work = _stage_and_plan(tmp_path, manifest, chunk_rows=3, limit=1)
    assert [r.row_id for r in in_staged_order(work, 0, work.chunk_rows(0))] == ["r0", "r1", "r2"]
    assert work.meta("order_by") is None
    assert {row: action for row, (action, _) in _outcomes(work).items()} == {
        "r0": "submit",
        "r1": "settled",
        "r2": "settled",
        "r3": "settled",
    }


def test_row_ids_are_the_same_with_or_without_an_order(tmp_path: Path) -> None:
    """Without an id column, a repeated image is named -2, -3... in the manifest's order."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("image_url,prio\na.png,3\nb.png,2\na.png,1\na.png,0\n")

    def ids(name: str, **order) -> list[str]:
        work = Workspace(tmp_path / f"{name}.sqlite3")
        stage_rows(work, open_manifest(str(manifest), **order), 2)
        return [r["row_id"] for batch in work.results() for r in batch]

    plain = ids("plain")
    assert plain[2:] == [plain[0] + "-2", plain[0] + "-3"]
    assert ids("ordered", order_by="prio") == plain
