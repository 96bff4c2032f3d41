"""The plan: what each row needs, from the manifest, the run's workspace and the ledger."""

from __future__ import annotations

from pathlib import Path

from img2svg.plan.decide import PlanOptions, decide_rows
from img2svg.plan.identify import Identified
from img2svg.run.jobs import ImageRef
from img2svg.run.rows import ManifestRow
from img2svg.stores.ledger import Ledger, submission_key
from img2svg.stores.outputs import OutputStore
from img2svg.stores.workspace import Workspace

ROWS = [ManifestRow(0, "a", "a.png"), ManifestRow(1, "b", "b.png"), ManifestRow(2, "c", "a.png")]
FOUND = [
    Identified(0, ImageRef("path", "/m/a.png"), "sha256:a"),
    Identified(1, ImageRef("path", "/m/b.png"), "sha256:b"),
    Identified(2, ImageRef("path", "/m/a.png"), "sha256:a"),
]
KEY_A, KEY_B = submission_key("sha256:a", "fast"), submission_key("sha256:b", "fast")


def _plan(tmp_path: Path, ledger: Ledger, name: str, rows=ROWS, found=FOUND, **options):
    work = Workspace(tmp_path / f"{name}.sqlite3")
    work.add_rows(0, rows)
    decide_rows(
        0,
        rows,
        found,
        workspace=work,
        ledger=ledger,
        outputs=OutputStore(str(tmp_path / "out")),
        options=PlanOptions(mode="fast", backend="http://api", **options),
    )
    return work


def _jobs(work: Workspace) -> dict[str, dict]:
    return {r["key"]: dict(r) for r in work.db.execute("SELECT * FROM jobs")}


def test_an_interrupted_submission_is_resent_only_where_resending_is_free(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        ledger.claim(
            KEY_A,
            fingerprint="sha256:a",
            mode="fast",
            backend="http://api",
            idem_key="k",
            token_id=None,
            resend_ok=False,
        )
        free = _jobs(_plan(tmp_path, ledger, "free"))
        assert {k: j["action"] for k, j in free.items()} == {KEY_A: "submit", KEY_B: "submit"}
        assert free[KEY_A]["idem_key"] == "k"  # the same key: the service dedupes it
        assert free[KEY_A]["lead_row_id"] == "a"

        costly_work = _plan(tmp_path, ledger, "costly", resend_interrupted=False)
        costly = _jobs(costly_work)
        assert costly[KEY_A]["action"] == "settled" and costly[KEY_B]["action"] == "submit"
        assert costly[KEY_A]["status"] == "unconfirmed"
        assert "--resubmit-unconfirmed" in costly[KEY_A]["error"]
        assert costly_work.counts() == {"unconfirmed": 2, "pending": 1}  # rows a and c share it

        forced = _jobs(_plan(tmp_path, ledger, "forced", resend_interrupted=False, force=True))
        assert forced[KEY_A]["action"] == "submit" and forced[KEY_A]["idem_key"] != "k"

        # Exactly the unconfirmed image, with a new key; the other waits for a normal run.
        again = _jobs(
            _plan(tmp_path, ledger, "again", resend_interrupted=False, resubmit_unconfirmed=True)
        )
        assert again[KEY_A]["action"] == "submit" and again[KEY_A]["idem_key"] != "k"
        assert (again[KEY_B]["action"], again[KEY_B]["status"]) == ("settled", "skipped")


def test_dry_run_counts_with_a_limit(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        counts = _plan(tmp_path, ledger, "limited", limit=1).plan_counts()
    assert counts == {
        "tasks_to_submit": 1,
        "rows_to_submit": 2,
        "tasks_to_poll": 0,
        "rows_to_poll": 0,
        "rows_skipped": 1,
    }


def test_an_image_planned_in_an_earlier_chunk_is_followed_not_submitted_again(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        work = _plan(tmp_path, ledger, "chunks", rows=ROWS[:2], found=FOUND[:2])
        later = [ManifestRow(2, "c", "a.png")]
        work.add_rows(1, later)
        decide_rows(
            1,
            later,
            FOUND[2:],
            workspace=work,
            ledger=ledger,
            outputs=OutputStore(str(tmp_path / "out")),
            options=PlanOptions(mode="fast", backend="http://api"),
        )
        assert work.plan_counts()["tasks_to_submit"] == 2
        assert work.plan_counts()["rows_to_submit"] == 3
        (key,) = work.db.execute("SELECT key FROM rows WHERE idx = 2").fetchone()
        assert key == KEY_A


def test_plan_counts_with_several_settled_statuses(tmp_path: Path) -> None:
    rows = [*ROWS, ManifestRow(3, "d", "", invalid_reason="the image cell is empty")]
    found = [*FOUND, Identified(3)]
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        work = _plan(tmp_path, ledger, "mixed", rows=rows, found=found, limit=1)
        assert work.plan_counts() == {
            "tasks_to_submit": 1,
            "rows_to_submit": 2,
            "tasks_to_poll": 0,
            "rows_to_poll": 0,
            "rows_invalid": 1,
            "rows_skipped": 1,
        }
