"""A chunk task that fails for good never hangs the run nor loses its rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import img2svg.convert.chunks as chunks
from flows.convert import convert
from tests.helpers import image_manifest


@pytest.mark.timeout(180)
def test_a_submit_task_failing_for_good_ends_its_rows_as_errors(
    start_service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(chunks, "submit_jobs", broken)
    service = start_service()
    manifest = image_manifest(tmp_path, [1, 2, 3])
    state = convert(
        manifest=str(manifest),
        out=str(tmp_path / "out"),
        api_url=service.url,
        id_column="id",
        rate_limit=0,
        return_state=True,
    )
    assert state.is_failed()  # every row failed: over the failure ratio, but the run ended
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["error"] * 3
    assert results["error"].str.contains("submit failed: .*disk on fire").all(), results["error"]
