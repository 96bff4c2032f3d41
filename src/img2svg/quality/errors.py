"""Why a row has no quality score.

    ScoreError            the row gets no score; `reason` says why, in words a person can act on
     ├── ScoreRefused     the inputs were refused before any work: over a bound, not an image,
     │                    not a well-formed SVG, or an SVG that would make the renderer read files
     └── ScoreFailed      scoring started but did not finish: out of memory, an unexpected error
          ├── ScoreTimeout    the worker ran past the per-score time limit and was killed
          └── ScoreCrashed    the worker process died (segfault, abort, OOM killer)

A score is advisory: whatever the class, the caller records the reason beside the row and goes
on. The classes exist so that tests and logs can tell a refusal from a crash.
"""

from __future__ import annotations


class ScoreError(Exception):
    """Base class: this row could not be scored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ScoreRefused(ScoreError):
    """The source or the SVG was refused before scoring began."""


class ScoreFailed(ScoreError):
    """Scoring began but did not finish."""


class ScoreTimeout(ScoreFailed):
    """The score took longer than the per-score limit; its worker was killed."""


class ScoreCrashed(ScoreFailed):
    """The worker process died while scoring."""
