"""The task window keeps an API with a concurrency quota busy without running into it.

A chunk's poll task runs alongside its submit task and frees a window slot the moment a task
finishes: with a window of 3 and 15 images in one chunk, the run could not finish otherwise.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.convert import convert
from tests.helpers import image_manifest, metric


@pytest.mark.parametrize(("max_in_flight", "most_429s"), [(3, 0), (None, 10)])
def test_a_full_window_without_429s_once_the_limit_is_known(
    start_service, tmp_path: Path, max_in_flight: int | None, most_429s: int
) -> None:
    service = start_service("--max-concurrency", "3", "--latency", "0.5")
    manifest = image_manifest(tmp_path, list(range(15)))
    convert(
        manifest=str(manifest),
        out=str(tmp_path / "out"),
        api_url=service.url,
        id_column="id",
        rate_limit=0,
        max_in_flight=max_in_flight,
        return_state=True,
    )
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert results["status"].tolist() == ["succeeded"] * 15
    with httpx.Client(base_url=service.url) as api:
        assert metric(api, "img2svg_tasks_created_total") == 15
        refused = metric(api, "img2svg_refusals_total", '{code="2003"}')
    # Known: never over the limit. Learned: the first burst (8 requests at once) meets the
    # limit, then the window holds but for a probe every 6 finished tasks; without it, each of
    # the 12 submissions past the third is refused, once or more, until a slot frees.
    assert refused <= most_429s
