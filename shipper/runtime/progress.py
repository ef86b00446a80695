"""A progress bar for long backfills, on a terminal only (never in JSON-log mode or a pipe)."""

from __future__ import annotations

import sys
from typing import Any

from shipper.pipeline.delivery import Window


class BackfillProgress:
    """Span of history covered, windows, events, rate and ETA for one source's cycle."""

    def __init__(self, source: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            MofNCompleteColumn(),
            TextColumn("{task.fields[windows]} windows, {task.fields[events]} events"),
            TextColumn("{task.fields[rate]} ev/s"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
            transient=True,
        )
        self._source = source
        self._task: Any = None
        self._start = 0
        self._events = 0
        self._windows = 0

    def begin(self, start: int, end: int) -> None:
        self._start = start
        self._task = self._progress.add_task(
            f"{self._source}: backfill", total=max(end - start, 1), windows=0, events=0, rate=0
        )
        self._progress.start()

    def window(self, window: Window) -> None:
        self._events += len(window.events)
        self._windows += 1
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = int(self._events / elapsed) if elapsed > 0 else 0
        self._progress.update(
            self._task,
            completed=window.end - self._start,
            windows=self._windows,
            events=self._events,
            rate=rate,
        )

    def end(self) -> None:
        self._progress.stop()


def wanted(log_format: str) -> bool:
    return sys.stderr.isatty() and log_format != "json"
