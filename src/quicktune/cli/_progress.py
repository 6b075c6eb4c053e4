"""Progress of a long command: rich bars on a terminal; in a pipe or a log file (where rich draws
nothing until the end), one plain line when each stage starts and one when it ends."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from quicktune.durations import format_duration


class StageProgress:
    """`update(stage, done, total)` from the library's progress callback; `labels` names stages."""

    def __init__(self, console: Any, labels: dict[str, str] | None = None, unit: str = "") -> None:
        self.console = console
        self.labels = labels or {}
        self.unit = f" {unit}" if unit else ""
        self.bar: Any = None
        self._tasks: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._ended: set[str] = set()

    def __enter__(self) -> StageProgress:
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False)
            self.bar.__enter__()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.bar is not None:
            self.bar.__exit__(et, e, tb)

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def update(self, stage: str, done: int, total: int) -> None:
        label = self.labels.get(stage, stage)
        if self.bar is not None:
            if stage not in self._tasks:
                self._tasks[stage] = self.bar.add_task(label, total=total)
            self.bar.update(self._tasks[stage], completed=done, total=total)
            return
        if stage not in self._started:
            self._started[stage] = time.perf_counter()
            self._line(f"{label}: started ({total}{self.unit})")
        if done >= total and stage not in self._ended:
            self._ended.add(stage)
            took = format_duration(time.perf_counter() - self._started[stage])
            self._line(f"{label}: done ({done}/{total}{self.unit} in {took})")
