"""Against HiDream's documented semantics, never pay twice.

The API is `tests/standin`, written from HiDream's documentation alone: it does not dedupe
resent submissions, its ids may be integers, its result URLs redirect to signed links that
expire, its SVGs carry an XML declaration and a DOCTYPE, and it loses and fails answers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from flows.convert import convert
from tests.helpers import image_manifest
from tests.standin.hidream import HiDreamStandIn, Quirks

TOKEN = "standin-token"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIDREAM_API_TOKEN", TOKEN)


def _convert(manifest: Path, out: Path, url: str, **params) -> pd.DataFrame:
    params = {"rate_limit": 0, "id_column": "id", "max_failure_ratio": 1.0, **params}
    state = convert(manifest=str(manifest), out=str(out), api_url=url, return_state=True, **params)
    assert state.is_completed(), state.message  # a run that crashed would leave old results
    return pd.read_parquet(out / "results.parquet")


def test_lost_and_failed_answers_leave_rows_unconfirmed_and_never_bill_twice(tmp_path: Path):
    """Two runs, then --resubmit-unconfirmed: exactly one new task per unconfirmed image."""
    manifest = image_manifest(tmp_path, [i % 40 for i in range(48)])  # 8 duplicate rows
    quirks = Quirks(
        seed=3,
        token=TOKEN,
        integer_ids=True,
        null_sub_task_ids=True,
        error_rate=0.1,
        lose_rate=0.1,
        batch_entry_error_rate=0.1,
        processing_s=0.2,
    )
    out = tmp_path / "out"
    with HiDreamStandIn(quirks) as api:
        first = _convert(manifest, out, api.url, batch_size=10)
        assert len(first) == 48 and first["row_id"].is_unique
        assert set(first["status"]) <= {"succeeded", "unconfirmed"}
        assert api.max_tasks_per_image() == 1
        created_first, posts_first = api.tasks_created, api.submit_posts

        second = _convert(manifest, out, api.url, batch_size=10)
        assert set(second["status"]) <= {"succeeded", "unconfirmed"}
        assert (second["status"] == "succeeded").sum() == (first["status"] == "succeeded").sum()
        assert (api.tasks_created, api.submit_posts) == (created_first, posts_first)
        unconfirmed = second.loc[second["status"] == "unconfirmed"]
        assert len(unconfirmed) > 0, "the seed must lose some answers"
        assert unconfirmed["error"].str.contains("--resubmit-unconfirmed").all()
        images = unconfirmed["image"].nunique()

        # The account's task list showed which were billed; the API is healthy again.
        api.quirks = replace(api.quirks, error_rate=0.0, lose_rate=0.0)
        third = _convert(manifest, out, api.url, batch_size=10, resubmit_unconfirmed=True)
        assert third["status"].tolist() == ["succeeded"] * 48
        assert api.submit_posts - posts_first == images  # one POST per unconfirmed image
        assert api.tasks_created - created_first == images
        assert third.loc[unconfirmed.index, "reused"].eq(False).sum() >= images
    svgs = list((out / "svgs").glob("*.svg"))
    assert len(svgs) == 48
    assert all(p.read_bytes().startswith(b"<?xml") for p in svgs)  # stored as received


def test_odd_but_documented_answers_convert_every_image_once(tmp_path: Path) -> None:
    """Integer ids, null sub_task_ids, empty results while pending, per-entry poll errors,
    redirecting result URLs and DOCTYPE headers: all succeed, one task each, none twice."""
    manifest = image_manifest(tmp_path, list(range(12)))
    quirks = Quirks(
        token=TOKEN,
        integer_ids=True,
        null_sub_task_ids=True,
        batch_entry_error_rate=0.5,
        processing_s=0.5,
    )
    with HiDreamStandIn(quirks) as api:
        results = _convert(manifest, tmp_path / "out", api.url, batch_size=5)
        assert results["status"].tolist() == ["succeeded"] * 12
        assert results["task_id"].str.fullmatch(r"\d+").all()
        assert api.tasks_created == 12 and api.submit_posts == 12
        again = _convert(manifest, tmp_path / "out", api.url)
        assert again["reused"].all() and api.submit_posts == 12


def test_an_expired_result_url_is_fetched_again_never_paid_again(tmp_path: Path) -> None:
    manifest = image_manifest(tmp_path, list(range(4)))
    with HiDreamStandIn(Quirks(token=TOKEN, url_ttl_s=-10)) as api:  # every link has expired
        results = _convert(manifest, tmp_path / "out", api.url)
        assert results["status"].tolist() == ["error"] * 4
        assert results["error"].str.contains("next run polls it again, unpaid").all()
        # Each row asked its task for a fresh URL before giving up.
        assert api.expired_downloads == 4 * 4
        api.quirks = replace(api.quirks, url_ttl_s=30)
        rerun = _convert(manifest, tmp_path / "out", api.url)
        assert rerun["status"].tolist() == ["succeeded"] * 4
        assert api.tasks_created == 4 and api.submit_posts == 4
