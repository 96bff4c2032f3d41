"""The pipeline's steps made of tasks, shared by the whole-run flow and the shard flow.

Tasks are given the run's workspace (a path) and a chunk number, never lists of rows, so a run
holds one chunk at a time whatever the catalog's size; they hand back small counts.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, wait
from prefect.states import Completed, State

from flows.run import PreparedRun, in_ui, run_id
from img2svg.convert import progress
from img2svg.convert.backend import default_rate_limit, open_backend
from img2svg.convert.chunks import close_chunk, close_unsent
from img2svg.fsutil import no_space_as
from img2svg.run.settings import Endpoint, RunSettings
from img2svg.stores.workspace import Staged, Workspace
from tasks.convert import poll_chunk, submit_chunk
from tasks.limits import forget, shared_limit_exists, throttle_for
from tasks.plan import plan_chunk
from tasks.score import score_svgs


def plan_chunks(run: PreparedRun, staged: Staged) -> dict[str, int]:
    """Plan every chunk, in order (the first row of an image leads its duplicates): the run's
    cost, as the chunks' counts added up."""
    total: dict[str, int] = {}
    for chunk in range(staged.chunks):
        counts = plan_chunk.submit(
            staged.workspace,
            chunk,
            settings=run.settings,
            options=run.options,
            fingerprint=run.params.fingerprint,
            out=run.out,
            ledger_location=run.task_ledger,
        ).result()
        for name, n in counts.items():  # every name kept, zeros too: the dry run's table
            total[name] = total.get(name, 0) + n
    first = ("tasks_to_submit", "rows_to_submit", "tasks_to_poll", "rows_to_poll")
    plan = {name: total.get(name, 0) for name in first}  # an empty manifest costs 0 too
    plan |= {name: total[name] for name in sorted(total) if name not in first}
    get_run_logger().info("plan: %s", plan)
    return plan


def cost(plan: dict[str, int]) -> State:
    """A dry run's answer: what the run would submit, and that nothing was."""
    return Completed(
        message=(
            f"dry run: would submit {plan['tasks_to_submit']} tasks "
            f"({plan['rows_to_submit']} rows) and poll {plan['tasks_to_poll']} "
            "already submitted; nothing was submitted"
        ),
        data=plan,
    )


def convert_chunks(run: PreparedRun, staged: Staged, plan: dict[str, int]) -> None:
    """Submit | poll every chunk with work, each chunk's two tasks side by side (and one task
    scoring the SVGs as they arrive). With nothing to send, no service is started; SVGs reused
    from runs that never scored them are still scored."""
    every_chunk = list(range(staged.chunks))
    if not plan["tasks_to_submit"] and not plan["tasks_to_poll"]:
        if run.params.score:
            wait([score_svgs.submit(staged.workspace, every_chunk, run.settings, run.out,
                                    run.task_ledger)])  # fmt: skip
        return
    with open_backend(
        run.credentials, run.outputs, run.options.backend, run.options.resend_interrupted,
        run.shard,
    ) as endpoint:  # fmt: skip
        settings = _paced(run, endpoint)
        get_run_logger().info("converting with %r, %s", endpoint, settings)
        _submit_and_poll(run, staged, endpoint, settings)


def _submit_and_poll(
    run: PreparedRun, staged: Staged, endpoint: Endpoint, settings: RunSettings
) -> None:
    key = run_id()
    workspace, ledger = staged.workspace, run.task_ledger
    with Workspace(workspace) as work:
        busy = work.chunks_with_work()
    try:
        scores = (
            score_svgs.submit(workspace, list(range(staged.chunks)), settings, run.out, ledger)
            if run.params.score
            else None
        )
        submits = {
            chunk: submit_chunk.submit(workspace, chunk, endpoint, settings, key, ledger)
            for chunk in busy
        }
        polls = {
            chunk: poll_chunk.submit(workspace, chunk, endpoint, settings, run.out, key, ledger)
            for chunk in busy
        }
        try:
            _follow(submits, polls, workspace, settings, key, f"{run.artifacts}-progress")
        except BaseException as exc:
            # The run is stopping: nothing more is sent, and pollers leave what is still
            # running in the ledger. The POSTs already on the wire get their answers recorded
            # first: a task must not be left unknown because the run ended under it.
            throttle_for(key, settings).abandon(f"the run stopped: {exc}")
            wait([*submits.values(), *polls.values()], timeout=STOP_GRACE_S)
            with no_space_as(str(Path(workspace).parent)):
                raise
        if scores is not None:
            wait([scores])  # scoring that failed costs rows their scores, not their results
    finally:
        forget(key)


STOP_GRACE_S = 120.0  # how long a stopping run waits for its chunks' tasks to wind down


def _paced(run: PreparedRun, endpoint: Endpoint) -> RunSettings:
    """The run's settings with the API's pace: its rate limit and, for a remote API, the global
    concurrency limit every run shares when one is set up."""
    name = run.params.submission_limit
    shared = None
    if not endpoint.embedded and name:
        if shared_limit_exists(name):
            shared = name
        else:
            get_run_logger().info(
                "no active global concurrency limit %r: this run paces its own submissions "
                "only (docs/cli.md, 'Sharing one quota', to share one between runs)",
                name,
            )
    return replace(
        run.settings,
        rate_limit_per_minute=default_rate_limit(endpoint, run.params.rate_limit),
        shared_limit=shared,
    )


def _follow(
    submits: dict[int, PrefectFuture[int]],
    polls: dict[int, PrefectFuture[dict[str, int]]],
    workspace: str,
    settings: RunSettings,
    key: str,
    artifact_key: str,
) -> None:
    """Wait for every chunk's poll, showing progress. A chunk whose submit task failed for good
    has its unsent rows closed as errors (its poller then stops once the sent ones end); one
    whose poll task failed for good keeps its rows, as errors with the reason."""
    throttle = throttle_for(key, settings)
    with Workspace(workspace) as work:
        shown = _Progress(work, artifact_key)
        pending, unsent = dict(polls), dict(submits)
        while pending or unsent:
            shown.update()
            finished, _ = wait([*pending.values(), *unsent.values()], timeout=shown.every)
            for chunk, future in list(unsent.items()):
                state = future.state  # read once: each read may ask the Prefect API
                if state.is_failed() or state.is_crashed():
                    reason = f"not submitted: its chunk's submit failed: {state.message}"
                    close_unsent(work, chunk, reason)
                if state.is_final():
                    del unsent[chunk]
            for chunk, future in list(pending.items()):
                if future in finished:
                    del pending[chunk]
                    state = future.state
                    if state.is_failed() or state.is_crashed():
                        reason = f"the chunk's poll task failed: {state.message}"
                        close_chunk(work, chunk, reason, throttle)
        shown.update()


class _Progress:
    """Rows finished, on the console (`progress`) and as a Prefect progress artifact."""

    def __init__(self, work: Workspace, key: str) -> None:
        self.work = work
        started = time.monotonic()
        self.total = sum(work.counts().values())
        self.every = max(1.0, 10 * (time.monotonic() - started))  # counting must stay cheap
        self.shown = -1
        self.artifact = in_ui(
            "create the progress artifact",
            lambda: create_progress_artifact(
                progress=0.0, key=key, description=f"Rows finished of {self.total}"
            ),
        )

    def update(self) -> None:
        counts = self.work.counts()
        done = self.total - sum(n for s, n in counts.items() if s in ("pending", "submitted"))
        progress.report(done, self.total, counts)
        share = round(100.0 * done / max(self.total, 1))
        if self.artifact is not None and share != self.shown:
            self.shown = share
            in_ui(
                "update the progress artifact",
                lambda: update_progress_artifact(artifact_id=self.artifact, progress=share),
            )
