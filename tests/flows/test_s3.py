"""Catalogs and outputs on S3: a manifest, its images and the outputs in a bucket of a real S3
server (moto in server mode, on loopback), read and written by s3fs as on AWS."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from flows.convert import convert
from tests.helpers import logo_png
from tests.s3 import S3Server, s3_server


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    monkeypatch.setenv("IMG2SVG_STATE_DIR", str(tmp_path / "state"))
    with s3_server(tmp_path / "moto.log") as server:
        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        fs.mkdir("catalog")
        yield server


def _upload_catalog(seeds: list[int]) -> str:
    """s3://catalog/m.csv with rows r<i> naming images/<seed>.png, relative to the manifest."""
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    for seed in set(seeds):
        fs.pipe(f"catalog/images/{seed}.png", logo_png(40, seed=seed))
    lines = ["id,image_url", *(f"r{i},images/{seed}.png" for i, seed in enumerate(seeds))]
    fs.pipe("catalog/m.csv", ("\n".join(lines) + "\n").encode())
    return "s3://catalog/m.csv"


def test_manifest_images_and_outputs_on_s3(s3: S3Server) -> None:
    manifest = _upload_catalog([1, 2, 3, 1])
    out = "s3://catalog/out"

    state = convert(manifest=manifest, out=out, id_column="id", return_state=True)
    assert state.is_completed(), state.message

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    with fs.open("catalog/out/results.parquet", "rb") as handle:
        results = pd.read_parquet(handle)
    assert results["row_id"].tolist() == ["r0", "r1", "r2", "r3"]
    assert results["status"].tolist() == ["succeeded"] * 4
    assert results["svg_path"].tolist() == [f"{out}/svgs/r{i}.svg" for i in range(4)]
    for i in range(4):
        assert fs.cat(f"catalog/out/svgs/r{i}.svg").lstrip().startswith(b"<")
    assert fs.cat("catalog/out/svgs/r3.svg") == fs.cat("catalog/out/svgs/r0.svg")
    assert fs.exists("catalog/out/results.csv") and fs.exists("catalog/out/failures.csv")

    # A rerun reads the SVGs back from S3, finds them intact and pays for nothing.
    again = convert(manifest=manifest, out=out, id_column="id", return_state=True)
    assert again.is_completed(), again.message
    with fs.open("catalog/out/results.parquet", "rb") as handle:
        rerun = pd.read_parquet(handle)
    assert rerun["reused"].all()
    assert rerun["task_id"].tolist() == results["task_id"].tolist()
