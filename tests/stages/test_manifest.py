"""Manifests: CSV and Parquet, configurable columns, stable ids, clear failures."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from img2svg.stage.manifest import ManifestError, read_manifest, safe_id


def _csv(tmp_path: Path, text: str, name: str = "m.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_csv_rows_in_order_with_stable_hash_ids(tmp_path: Path) -> None:
    path = _csv(tmp_path, "image_url\na.png\nb.png\na.png\n\n")
    first = read_manifest(path)
    again = read_manifest(path)
    assert [r.image for r in first.rows] == ["a.png", "b.png", "a.png"]
    assert [r.row_id for r in first.rows] == [r.row_id for r in again.rows]
    assert len({r.row_id for r in first.rows}) == 3
    assert first.rows[2].row_id == first.rows[0].row_id + "-2"
    assert first.base == str(tmp_path)


def test_parquet_with_custom_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    pd.DataFrame({"sku": ["A-1", "B/2", None], "picture": ["x.png", None, "z.png"]}).to_parquet(
        path
    )
    manifest = read_manifest(str(path), image_column="picture", id_column="sku")
    ids = [r.row_id for r in manifest.rows]
    assert ids[0] == "A-1"
    assert ids[1].startswith("B_2-")  # made file-name safe, with a hash against collisions
    assert manifest.rows[1].invalid_reason == "the image cell is empty"
    assert manifest.rows[2].row_id == "row-2" and manifest.rows[2].invalid_reason


def test_duplicate_ids_make_later_rows_invalid(tmp_path: Path) -> None:
    path = _csv(tmp_path, "id,image_url\nk,a.png\nk,b.png\n")
    rows = read_manifest(path, id_column="id").rows
    assert rows[0].invalid_reason is None
    assert "duplicate id 'k'" in rows[1].invalid_reason
    assert rows[0].row_id != rows[1].row_id


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"image_url\n", "no rows"),
        (
            b"url\nx.png\n",
            "no column 'image_url' (columns: url); name the right one with --image-column",
        ),
        ("image_url\ncaf\u00e9.png\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_malformed_manifests_fail_fast(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=words.replace("(", r"\(").replace(")", r"\)")):
        read_manifest(str(path))


def test_missing_manifest_and_missing_id_column(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="does not exist"):
        read_manifest(str(tmp_path / "nope.csv"))
    path = _csv(tmp_path, "image_url\na.png\n")
    with pytest.raises(ManifestError, match="--id-column"):
        read_manifest(path, id_column="sku")


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "m.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ManifestError, match="Parquet"):
        read_manifest(str(path))


def test_safe_id() -> None:
    assert safe_id("abc-1.2_x") == "abc-1.2_x"
    assert safe_id("../etc/passwd") != safe_id("..-etc-passwd")
    assert "/" not in safe_id("../etc/passwd")


def test_streamed_in_chunks_ids_stay_unique_across_chunks(tmp_path: Path) -> None:
    import sqlite3

    from img2svg.stage.manifest import RowIds, iter_rows, open_manifest

    lines = "\n".join(f"{i % 7},img{i % 5}.png,v{i}" for i in range(30))
    path = _csv(tmp_path, "\ufeffsku,image_url,etag\n" + lines + "\n\n")  # a BOM, a blank line
    source = open_manifest(path, id_column="sku", version_column="etag")
    chunks = list(iter_rows(source, 4))
    assert [len(c) for c in chunks] == [4] * 7 + [2]
    ids = RowIds(sqlite3.connect(":memory:"))
    rows = [row for chunk in chunks for row in ids.assign(chunk)]
    assert [r.index for r in rows] == list(range(30))
    assert len({r.row_id for r in rows}) == 30
    assert rows[7].invalid_reason == "duplicate id '0' (first at row 0)"
    assert rows[29].version == "v29" and rows[29].image == "img4.png"
    with pytest.raises(ManifestError, match="--version-column"):
        open_manifest(path, version_column="updated_at")
