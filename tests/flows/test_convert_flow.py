"""The conversion flow end to end: real flow runs, the real service over HTTP, real files."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import defusedxml.ElementTree as ET
import pandas as pd
import pytest
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.convert import convert
from img2svg.run.rows import RESULT_COLUMNS
from tests.helpers import LoopbackServer, Route, logo_png


def _run(manifest: Path, out: Path, **params):
    state = convert(manifest=str(manifest), out=str(out), return_state=True, **params)
    summary = state.result(raise_on_failure=False)
    results = pd.read_parquet(out / "results.parquet")
    return state, summary, results


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(logo_png(72, seed=5))).convert("RGB").save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def mixed_manifest(tmp_path: Path, web: LoopbackServer) -> Path:
    images = tmp_path / "manifest" / "images"
    images.mkdir(parents=True)
    (images / "a.png").write_bytes(logo_png(64, seed=1))
    (images / "b.jpg").write_bytes(_jpeg())
    (images / "notes.txt").write_text("not an image")
    data_uri = "data:image/png;base64," + base64.b64encode(logo_png(40, seed=2)).decode()
    http_url = web.add("/c.png", Route(body=logo_png(56, seed=3), content_type="image/png"))
    rows = [
        "images/a.png",  # relative path
        f"file://{images / 'b.jpg'}",  # file:// URL
        data_uri,  # data: URI
        http_url,  # http URL on loopback: fetched by the pipeline, sent inline
        "images/missing.png",  # invalid: no such file
        "",  # invalid: empty cell
        "images/notes.txt",  # refused by the API: not an image
        "images/a.png",  # the same image again
        web.url + "/gone.png",  # 404 on the image host
        "http://[abc/x.png",  # invalid: a malformed URL
    ]
    manifest = tmp_path / "manifest" / "m.csv"
    pd.DataFrame({"image_url": rows}).to_csv(manifest, index=False)
    return manifest


def test_mixed_manifest_gives_one_row_per_input(mixed_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    state, summary, results = _run(mixed_manifest, out, max_failure_ratio=1.0)
    assert state.is_completed()
    assert list(results.columns) == RESULT_COLUMNS
    assert len(results) == 10
    expected = [
        "succeeded", "succeeded", "succeeded", "succeeded",
        "invalid", "invalid", "error", "succeeded", "error", "invalid",
    ]  # fmt: skip
    assert results["status"].tolist() == expected
    assert "no such file" in results.loc[4, "error"]
    assert "empty" in results.loc[5, "error"]
    assert "not a supported image" in results.loc[6, "error"]
    assert "404" in results.loc[8, "error"]
    assert "malformed URL" in results.loc[9, "error"]
    assert results["row_id"].is_unique
    assert results.loc[4, "task_id"] is None or pd.isna(results.loc[4, "task_id"])
    for _, row in results[results["status"] == "succeeded"].iterrows():
        svg = Path(row["svg_path"]).read_bytes()
        assert len(svg) == row["svg_bytes"]
        assert ET.fromstring(svg).tag.endswith("svg")
        assert row["duration_s"] >= 0 and row["attempts"] == 1
    assert results.loc[2, "image"].startswith("data:image/png;base64,…")

    csv = pd.read_csv(out / "results.csv")
    assert csv["status"].tolist() == expected
    failures = pd.read_csv(out / "failures.csv")
    assert len(failures) == 5
    assert set(failures["status"]) == {"invalid", "error"}
    assert summary.counts["succeeded"] == 5 and summary.counts["invalid"] == 3


def test_parquet_manifest_with_id_column(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(logo_png(48, seed=9))
    manifest = tmp_path / "m.parquet"
    pd.DataFrame({"sku": ["s1", "s2"], "picture": ["x.png", "x.png"]}).to_parquet(manifest)
    state, _, results = _run(
        manifest, tmp_path / "out", image_column="picture", id_column="sku", mode="slow"
    )
    assert state.is_completed()
    assert results["row_id"].tolist() == ["s1", "s2"]
    assert results["status"].tolist() == ["succeeded", "succeeded"]
    assert (tmp_path / "out" / "svgs" / "s1.svg").exists()
    assert set(results["mode"]) == {"slow"}


def test_failure_ratio_fails_the_run_and_artifacts_are_published(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"image_url": ["nope1.png", "nope2.png", "x.png"]}).to_csv(manifest, index=False)
    (tmp_path / "x.png").write_bytes(logo_png(32))
    state, _summary, results = _run(manifest, tmp_path / "out", max_failure_ratio=0.5)
    assert state.is_failed()
    assert "exceeds" in state.message
    assert results["status"].tolist() == ["invalid", "invalid", "succeeded"]

    run_id = state.state_details.flow_run_id

    async def artifacts() -> dict[str, object]:
        async with get_client() as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
            )
        return {a.key: a for a in found if a.key}

    import asyncio

    found = asyncio.run(artifacts())
    keys = {"img2svg-adhoc-m-counts", "img2svg-adhoc-m-report", "img2svg-adhoc-m-progress"}
    assert keys <= set(found)
    table = found["img2svg-adhoc-m-counts"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert {"status": "invalid", "rows": 2, "share": "66.7%"} in rows
    assert "no such file" in found["img2svg-adhoc-m-report"].data
    assert float(found["img2svg-adhoc-m-progress"].data) == 100.0


def test_manifest_problems_fail_fast(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("url\nx.png\n")
    state = convert(manifest=str(manifest), out=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="no column 'image_url'"):
        state.result()
    assert not (tmp_path / "out" / "results.parquet").exists()


def test_a_prefect_api_failure_on_the_progress_artifact_does_not_stop_the_run(
    start_service, tmp_path: Path
) -> None:
    """The progress artifact is deleted mid-run (a real 404 from the Prefect API on every
    update after it): the run still finishes and writes its results, since its tasks are
    paid for."""
    import threading
    import time

    from prefect.client.schemas.filters import ArtifactFilterKey

    from tests.helpers import image_manifest

    service = start_service("--latency", "0.5")
    manifest = image_manifest(tmp_path, list(range(9)))
    progress = ArtifactFilter(key=ArtifactFilterKey(any_=["img2svg-adhoc-m-progress"]))
    with get_client(sync_client=True) as client:
        before = {a.id for a in client.read_artifacts(artifact_filter=progress)}
    deleted: list[object] = []
    stop = threading.Event()

    def delete_the_new_progress_artifact() -> None:
        with get_client(sync_client=True) as client:
            while not stop.is_set() and not deleted:
                for artifact in client.read_artifacts(artifact_filter=progress):
                    if artifact.id not in before:
                        client.delete_artifact(artifact.id)
                        deleted.append(artifact.id)
                time.sleep(0.02)

    watcher = threading.Thread(target=delete_the_new_progress_artifact, daemon=True)
    watcher.start()
    try:
        state, _, results = _run(
            manifest, tmp_path / "out", api_url=service.url, rate_limit=0, chunk_size=3
        )
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert deleted, "the progress artifact was never deleted"
    assert state.is_completed(), state.message
    assert results["status"].tolist() == ["succeeded"] * 9
