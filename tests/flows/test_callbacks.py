"""Lost answers recovered by HiDream's notify_url callbacks, never paid for twice.

The API is the stand-in written from HiDream's documents (`tests/standin`): it does not dedupe,
loses 20 % of answers after creating (and billing) their task, fails 10 % of submissions with
an HTML 500 before creating anything, and POSTs each task's end to its notify_url as HiDream
documents. The callbacks go to a real `img2svg receive` process on the run's ledger.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from flows.convert import convert
from img2svg.stores.ledger import Ledger
from tests.helpers import image_manifest, wait_for
from tests.standin.hidream import HiDreamStandIn, Quirks

TOKEN = "standin-token"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIDREAM_API_TOKEN", TOKEN)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(notify URL, ledger) of an `img2svg receive` process."""
    ledger, port_file = tmp_path / "ledger.sqlite3", tmp_path / "receiver.port"
    process = subprocess.Popen(
        [sys.executable, "-m", "img2svg.cli", "receive", "--port", "0", "--port-file",
         str(port_file), "--ledger", str(ledger), "--log-level", "warning"],
    )  # fmt: skip
    try:
        wait_for(lambda: port_file.exists() or process.poll() is not None, 30)
        assert process.poll() is None
        yield f"http://127.0.0.1:{port_file.read_text().strip()}/img2svg/callbacks", ledger
    finally:
        process.terminate()
        process.wait(10)


def _convert(manifest: Path, out: Path, url: str, **params) -> pd.DataFrame:
    params = {"rate_limit": 0, "id_column": "id", "max_failure_ratio": 1.0, **params}
    state = convert(manifest=str(manifest), out=str(out), api_url=url, return_state=True, **params)
    assert state.is_completed(), state.message
    return pd.read_parquet(out / "results.parquet")


def test_callbacks_recover_lost_answers_and_nothing_is_paid_twice(tmp_path: Path, receiver):
    notify_url, ledger = receiver
    seeds = [i % 50 for i in range(60)]  # 50 images, 10 duplicate rows
    manifest = image_manifest(tmp_path, seeds)
    quirks = Quirks(seed=7, token=TOKEN, integer_ids=True, null_sub_task_ids=True,
                    lose_rate=0.2, fail_before_create_rate=0.1, processing_s=0.3)  # fmt: skip
    out = tmp_path / "out"
    run = {"ledger": str(ledger), "notify_url": notify_url, "callback_grace": 4.0}
    with HiDreamStandIn(quirks) as api:
        first = _convert(manifest, out, api.url, chunk_size=20, **run)
        assert len(first) == 60 and first["row_id"].is_unique
        assert api.max_tasks_per_image() == 1
        lost_answers = api.submit_posts - api.tasks_created  # 500s before creating
        assert api.callbacks_delivered == api.tasks_created > 0
        # Every image that has a task has all its rows succeeded, lost answers included.
        unconfirmed = first.loc[first["status"] != "succeeded"]
        assert set(unconfirmed["status"]) == {"unconfirmed"}
        assert unconfirmed["error"].str.contains("no callback arrived within 4 s").all()
        assert unconfirmed["image"].nunique() == lost_answers > 0
        succeeded_images = set(first.loc[first["status"] == "succeeded", "image"])
        assert succeeded_images.isdisjoint(unconfirmed["image"])
        assert len(succeeded_images) == api.tasks_created

        api.quirks = replace(api.quirks, lose_rate=0.0, fail_before_create_rate=0.0)
        created = api.tasks_created
        again = _convert(manifest, out, api.url, chunk_size=20, resubmit_unconfirmed=True, **run)
        assert again["status"].tolist() == ["succeeded"] * 60
        assert api.tasks_created - created == lost_answers  # only those never created
        assert api.tasks_created == len(set(seeds))  # tasks created = distinct images
        assert api.max_tasks_per_image() == 1  # 0 paid twice
    with Ledger(ledger) as book:
        assert book.counts() == {"succeeded": len(set(seeds))}


def test_a_callback_heard_after_the_run_is_applied_by_the_next_run(tmp_path: Path, receiver):
    """The grace ends before the callbacks come (they are slow): the rows are unconfirmed, then
    the next run finds their tasks through the ledger and downloads them, sending nothing."""
    notify_url, ledger = receiver
    manifest = image_manifest(tmp_path, list(range(12)))
    quirks = Quirks(seed=2, token=TOKEN, lose_rate=0.5, processing_s=2.5)
    out = tmp_path / "out"
    run = {"ledger": str(ledger), "notify_url": notify_url, "callback_grace": 0.5}
    with HiDreamStandIn(quirks) as api:
        first = _convert(manifest, out, api.url, **run)
        lost = first.loc[first["status"] == "unconfirmed"]
        assert len(lost) > 0, "the seed must lose some answers"
        wait_for(lambda: api.callbacks_delivered == api.tasks_created, 20)
        posts = api.submit_posts
        second = _convert(manifest, out, api.url, **run)
        assert second["status"].tolist() == ["succeeded"] * 12
        assert api.submit_posts == posts  # nothing sent: the callbacks named every task
