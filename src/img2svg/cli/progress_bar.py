"""A terminal progress bar fed by the flow's progress reports."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from img2svg.convert import progress


class ProgressBar:
    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("converting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("convert", total=None, counts="")

    def _on_progress(self, done: int, total: int, counts: Mapping[str, int]) -> None:
        text = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
        self._progress.update(self._task, completed=done, total=total, counts=text)

    def finish(self) -> None:
        self._progress.refresh()

    def __enter__(self) -> ProgressBar:
        progress.add_listener(self._on_progress)
        self._progress.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        progress.remove_listener(self._on_progress)
        self._progress.stop()
