"""Submissions whose answer was lost, waiting for the task's callback to name it.

Against an API that does not dedupe, a POST whose answer was lost may have created (and billed)
a task; sending it again could pay twice. With `--notify-url`, the API POSTs the task's end to
`img2svg receive`, which writes the task id into the ledger beside the claim. The chunk's
poll step asks the ledger about such rows: a row whose task is now known is handed to the
poller like any submitted one; a row with no callback after the grace period is left
`unconfirmed`, for `--resubmit-unconfirmed` to send again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from img2svg.run.jobs import JobRecord, changes
from img2svg.run.rows import RowStatus
from img2svg.stores.ledger import Ledger, State

CHECK_EVERY_S = 0.25  # one indexed read of the ledger for all the chunk's waiting rows

UNCONFIRMED_AFTER_GRACE = (
    "no callback arrived within {grace:g} s of the submission, whose answer was lost: the API "
    "may have created (and billed) a task, or not. A callback arriving later is applied by the "
    "next run or `img2svg status`; else check the account's task list, then run the same "
    "command with --resubmit-unconfirmed to submit it anew"
)


class CallbackWait:
    def __init__(
        self, ledger: Ledger, grace_s: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.ledger, self.grace_s, self.clock = ledger, grace_s, clock
        self._checked = 0.0

    def check(self, waiting: list[JobRecord]) -> list[tuple[str, dict[str, Any]]]:
        """What changed for the waiting rows: (key, columns) to save in the workspace."""
        now = self.clock()
        if not waiting or now - self._checked < CHECK_EVERY_S:
            return []
        self._checked = now
        known = self.ledger.submissions([record.key for record in waiting])
        moved: list[tuple[str, dict[str, Any]]] = []
        for record in waiting:
            claim = known.get(record.key)
            if claim is not None and claim.task_id and claim.state == State.SUBMITTED:
                moved.append(
                    (record.key, changes(task_id=claim.task_id, error=None, submitted_at=now))
                )
            elif now >= (record.submitted_at or now) + self.grace_s:
                reason = UNCONFIRMED_AFTER_GRACE.format(grace=self.grace_s)
                moved.append(
                    (
                        record.key,
                        changes(status=str(RowStatus.UNCONFIRMED), error=reason, finished_at=now),
                    )
                )
        return moved
