"""Against HiDream's documented semantics, never pay twice.

The API is `tests/standin`, written from HiDream's documentation alone: it does not dedupe
resent submissions, its ids may be integers, its result URLs redirect to signed links that
expire, its SVGs carry an XML declaration and a DOCTYPE, and it loses and fails answers.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from flows.convert import convert
from img2svg.stores.ledger import Ledger
from img2svg.stores.outputs import OutputStore
from img2svg.stores.placement import default_ledger
from img2svg.svg import sanitize_svg
from img2svg.svg.check import check_svg
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
        first = _convert(manifest, out, api.url, chunk_size=10)
        assert len(first) == 48 and first["row_id"].is_unique
        assert set(first["status"]) <= {"succeeded", "unconfirmed"}
        assert api.max_tasks_per_image() == 1
        created_first, posts_first = api.tasks_created, api.submit_posts

        second = _convert(manifest, out, api.url, chunk_size=10)
        assert set(second["status"]) <= {"succeeded", "unconfirmed"}
        assert (second["status"] == "succeeded").sum() == (first["status"] == "succeeded").sum()
        assert (api.tasks_created, api.submit_posts) == (created_first, posts_first)
        unconfirmed = second.loc[second["status"] == "unconfirmed"]
        assert len(unconfirmed) > 0, "the seed must lose some answers"
        assert unconfirmed["error"].str.contains("--resubmit-unconfirmed").all()
        images = unconfirmed["image"].nunique()

        # The account's task list showed which were billed; the API is healthy again.
        api.quirks = replace(api.quirks, error_rate=0.0, lose_rate=0.0)
        third = _convert(manifest, out, api.url, chunk_size=10, resubmit_unconfirmed=True)
        assert third["status"].tolist() == ["succeeded"] * 48
        assert api.submit_posts - posts_first == images  # one POST per unconfirmed image
        assert api.tasks_created - created_first == images
        assert third.loc[unconfirmed.index, "reused"].eq(False).sum() >= images
    svgs = list((out / "svgs").glob("*.svg"))
    assert len(svgs) == 48
    for path in svgs:  # written anew, unflagged: the stand-in's formatting is not content
        assert path.read_bytes().startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert not third["flags"].fillna("").str.contains("sanitized").any()


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
        results = _convert(manifest, tmp_path / "out", api.url, chunk_size=5)
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


def test_unsafe_svgs_are_stored_sanitized_and_flagged(tmp_path: Path) -> None:
    """An API answering SVGs with a script, an onload= handler and an external <image>: the
    stored SVGs hold none of them and still draw, each row (the duplicate too) says
    `sanitized`, and the SHA-256 recorded is of the bytes written."""
    manifest = image_manifest(tmp_path, [0, 1, 0])
    out = tmp_path / "out"
    with HiDreamStandIn(Quirks(token=TOKEN, malicious=True)) as api:
        results = _convert(manifest, out, api.url, score=False)
    assert results["status"].tolist() == ["succeeded"] * 3
    assert results["flags"].tolist() == ["sanitized"] * 3
    assert results["reused"].tolist() == [False, False, True]
    for path in results["svg_path"]:
        svg = Path(path).read_bytes()
        check_svg(svg)
        assert b"<script" not in svg and b"onload" not in svg and b"<image" not in svg
        assert b"127.0.0.1:9" not in svg and b"<rect " in svg
        assert sanitize_svg(svg).changed is False
    with Ledger(default_ledger(OutputStore(str(out)))) as ledger:
        rows = ledger.rows(results["row_id"].tolist())
    for row_id, record in rows.items():
        written = (out / "svgs" / f"{row_id}.svg").read_bytes()
        assert record.svg_sha256 == hashlib.sha256(written).hexdigest()
    csv = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert csv["flags"].tolist() == ["sanitized"] * 3


def test_formula_like_error_texts_are_escaped_in_the_csv_files(tmp_path: Path) -> None:
    """A failure description starting with `=` reaches results.parquet as is, and the CSV files
    behind a `'`, so a spreadsheet shows it rather than running it."""
    manifest = image_manifest(tmp_path, [0, 1])
    out = tmp_path / "out"
    with HiDreamStandIn(Quirks(token=TOKEN, malicious=True, fail_task_rate=1.0)) as api:
        results = _convert(manifest, out, api.url, score=False)
    formula = '=HYPERLINK("http://127.0.0.1:9/","vectorization failed")'
    assert results["status"].tolist() == ["failed"] * 2
    assert results["error"].tolist() == [formula] * 2
    assert results["flags"].tolist() == ["", ""]
    csv = pd.read_csv(out / "results.csv")
    assert csv["error"].tolist() == ["'" + formula] * 2
    failures = pd.read_csv(out / "failures.csv")
    assert failures["error"].tolist() == ["'" + formula] * 2


def test_a_rerun_reusing_a_sanitized_svg_still_says_so(tmp_path: Path) -> None:
    manifest = image_manifest(tmp_path, [0, 1])
    with HiDreamStandIn(Quirks(token=TOKEN, malicious=True)) as api:
        first = _convert(manifest, tmp_path / "out", api.url, score=False)
        again = _convert(manifest, tmp_path / "out", api.url, score=False)
        assert api.tasks_created == 2
    assert first["flags"].tolist() == ["sanitized"] * 2
    assert again["reused"].all() and again["flags"].tolist() == ["sanitized"] * 2
