"""Never pay twice: reruns reuse successes, duplicates share a task; --force, --dry-run, --limit.

Each test counts the tasks the real service created (its /metrics) against the distinct images
the pipeline had to convert.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from flows.convert import convert
from img2svg.stores.ledger import Ledger, RunInProgress
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import default_ledger
from tests.helpers import image_manifest, logo_png, metric


def _manifest(tmp_path: Path, seeds: list[int]) -> Path:
    return image_manifest(tmp_path, seeds)


def _run(manifest: Path, out: Path, url: str, **params):
    params = {"rate_limit": 0, "id_column": "id", **params}
    state = convert(manifest=str(manifest), out=str(out), api_url=url, return_state=True, **params)
    return state


def _created(url: str) -> int:
    with httpx.Client(base_url=url) as api:
        return int(metric(api, "img2svg_tasks_created_total"))


def test_duplicates_are_submitted_once_and_reruns_convert_only_what_changed(
    start_service, tmp_path: Path
) -> None:
    service = start_service()
    manifest = _manifest(tmp_path, [1, 2, 3, 1, 2, 4])  # 6 rows, 4 distinct images
    out = tmp_path / "out"

    assert _run(manifest, out, service.url).is_completed()
    first = pd.read_parquet(out / "results.parquet")
    assert _created(service.url) == 4
    assert first["status"].tolist() == ["succeeded"] * 6
    assert first["reused"].tolist() == [False, False, False, True, True, False]
    assert first.loc[3, "task_id"] == first.loc[0, "task_id"]
    for row_id in first["row_id"]:
        assert (out / "svgs" / f"{row_id}.svg").read_bytes().startswith(b"<")
    assert (out / "svgs" / "r3.svg").read_bytes() == (out / "svgs" / "r0.svg").read_bytes()

    # Same manifest again: nothing new is paid for; every row is reported as before.
    assert _run(manifest, out, service.url).is_completed()
    second = pd.read_parquet(out / "results.parquet")
    assert _created(service.url) == 4
    assert second["status"].tolist() == ["succeeded"] * 6
    assert second["reused"].all()
    assert second["task_id"].tolist() == first["task_id"].tolist()

    # One image changed, one row added, one SVG deleted by hand: only the first two cost a task.
    (tmp_path / "images" / "3.png").write_bytes(logo_png(40, seed=33))
    (tmp_path / "images" / "5.png").write_bytes(logo_png(40, seed=5))
    with manifest.open("a") as handle:
        handle.write("r6,images/5.png\n")
    (out / "svgs" / "r1.svg").unlink()
    assert _run(manifest, out, service.url).is_completed()
    third = pd.read_parquet(out / "results.parquet")
    assert _created(service.url) == 6
    assert third["status"].tolist() == ["succeeded"] * 7
    assert third["reused"].tolist() == [True, True, False, True, True, True, False]
    assert (out / "svgs" / "r1.svg").read_bytes() == (out / "svgs" / "r4.svg").read_bytes()


def test_force_dry_run_and_limit(start_service, tmp_path: Path) -> None:
    service = start_service()
    manifest = _manifest(tmp_path, [1, 2, 3, 4, 5, 1])  # 6 rows, 5 distinct
    out = tmp_path / "out"

    dry = _run(manifest, out, service.url, dry_run=True)
    assert dry.is_completed()
    assert dry.result()["tasks_to_submit"] == 5
    assert dry.result()["rows_to_submit"] == 6
    assert "would submit 5 tasks" in dry.message
    assert _created(service.url) == 0
    assert not (out / "results.parquet").exists()

    assert _run(manifest, out, service.url, limit=2).is_completed()
    limited = pd.read_parquet(out / "results.parquet")
    assert _created(service.url) == 2
    assert limited["status"].tolist() == ["succeeded", "succeeded"] + ["skipped"] * 3 + [
        "succeeded"
    ]
    assert limited.loc[2, "error"].startswith("not submitted: the run's --limit of 2")

    assert _run(manifest, out, service.url, dry_run=True).result()["tasks_to_submit"] == 3
    assert _run(manifest, out, service.url).is_completed()
    assert _created(service.url) == 5
    assert pd.read_parquet(out / "results.parquet")["status"].eq("succeeded").all()
    nothing_left = _run(manifest, out, service.url, dry_run=True).result()  # zeros are counts too
    assert nothing_left["tasks_to_submit"] == nothing_left["tasks_to_poll"] == 0

    assert _run(manifest, out, service.url, force=True).is_completed()
    forced = pd.read_parquet(out / "results.parquet")
    assert _created(service.url) == 10
    assert forced["status"].eq("succeeded").all()
    assert forced["reused"].tolist() == [False] * 5 + [True]


def test_rejected_images_are_not_paid_for_again(start_service, tmp_path: Path) -> None:
    service = start_service("--reject-rate", "1")
    manifest = _manifest(tmp_path, [1, 2])
    out = tmp_path / "out"
    _run(manifest, out, service.url, max_failure_ratio=1.0)
    assert _created(service.url) == 2
    _run(manifest, out, service.url, max_failure_ratio=1.0)
    again = pd.read_parquet(out / "results.parquet")
    assert _created(service.url) == 2
    assert again["status"].tolist() == ["rejected", "rejected"]
    assert again["error"].str.contains("not resubmitted, use --force").all()


def test_a_second_run_on_the_same_outputs_stops_at_once(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, [1])
    out = tmp_path / "out"
    with Ledger(default_ledger(OutputStore(str(out)))) as ledger, ledger.run_lock(str(out)):
        busy = convert(manifest=str(manifest), out=str(out), return_state=True)
        # Looking is allowed while another run works.
        dry = convert(manifest=str(manifest), out=str(out), dry_run=True, return_state=True)
    assert busy.is_failed()
    with pytest.raises(RunInProgress, match=f"another img2svg run .* is writing to {out}"):
        busy.result()
    assert dry.is_completed() and dry.result()["tasks_to_submit"] == 1
    assert not (out / "results.parquet").exists()
