"""The plan: what each row needs, from the manifest and the ledger of earlier runs."""

from __future__ import annotations

from pathlib import Path

from img2svg.pipeline.images import ImageRef
from img2svg.pipeline.ledger import Ledger, submission_key
from img2svg.pipeline.manifest import ManifestRow
from img2svg.pipeline.outputs import OutputStore
from img2svg.pipeline.plan import Identified, plan_run
from img2svg.pipeline.rows import RowStatus

ROWS = [ManifestRow(0, "a", "a.png"), ManifestRow(1, "b", "b.png"), ManifestRow(2, "c", "a.png")]
FOUND = [
    Identified(0, ImageRef("path", "/m/a.png"), "sha256:a"),
    Identified(1, ImageRef("path", "/m/b.png"), "sha256:b"),
    Identified(2, ImageRef("path", "/m/a.png"), "sha256:a"),
]


def _plan(tmp_path: Path, ledger: Ledger, **options):
    return plan_run(
        ROWS,
        FOUND,
        mode="fast",
        ledger=ledger,
        outputs=OutputStore(str(tmp_path / "out")),
        backend="http://api",
        **options,
    )


def test_an_interrupted_submission_is_resent_only_where_resending_is_free(tmp_path: Path):
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        key = submission_key("sha256:a", "fast")
        ledger.claim(
            key,
            fingerprint="sha256:a",
            mode="fast",
            backend="http://api",
            idem_key="k",
            token_id=None,
            resend_ok=False,
        )

        free = _plan(tmp_path, ledger)
        assert [job.key for job in free.to_submit] == [key, submission_key("sha256:b", "fast")]
        assert free.to_submit[0].idem_key == "k"  # the same key: the service dedupes it
        assert [f.row_id for f in free.to_submit[0].followers] == ["c"]

        costly = _plan(tmp_path, ledger, resend_interrupted=False)
        assert [job.key for job in costly.to_submit] == [submission_key("sha256:b", "fast")]
        held = {s.row_id: s for s in costly.settled}
        assert held.keys() == {"a", "c"}
        assert all(s.status is RowStatus.UNCONFIRMED for s in held.values())
        assert "may have been billed" in held["a"].error
        assert "--resubmit-unconfirmed" in held["a"].error

        forced = _plan(tmp_path, ledger, resend_interrupted=False, force=True)
        assert len(forced.to_submit) == 2 and forced.to_submit[0].idem_key != "k"

        # Exactly the unconfirmed image, with a new key; the other waits for a normal run.
        again = _plan(tmp_path, ledger, resend_interrupted=False, resubmit_unconfirmed=True)
        assert [job.key for job in again.to_submit] == [key]
        assert again.to_submit[0].idem_key != "k"
        assert [(s.row_id, s.status) for s in again.settled] == [("b", RowStatus.SKIPPED)]


def test_dry_run_counts(tmp_path: Path) -> None:
    with Ledger(tmp_path / "ledger.sqlite3") as ledger:
        counts = _plan(tmp_path, ledger, limit=1).counts()
    assert counts == {
        "tasks_to_submit": 1,
        "rows_to_submit": 2,
        "tasks_to_poll": 0,
        "rows_to_poll": 0,
        "rows_skipped": 1,
    }
