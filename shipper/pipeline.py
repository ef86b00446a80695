"""One cycle: fetch the span every sink still needs, window by window, and fan it out.

The span runs from the oldest sink cursor minus `lookback` to the `now` read when the cycle
began. Windows are fetched up to `concurrency` at a time but handed to the sinks strictly in
order; each sink commits its cursor after every window it finished (see `delivery.py`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from shipper.config import SourceSettings
from shipper.delivery import SinkReport, SinkWorker, Window
from shipper.model import AuditEvent
from shipper.source import AuditLogClient, WindowOverflowError
from shipper.windows import WindowPlanner, split

log = structlog.get_logger("shipper.pipeline")

DEFAULT_START_BACK = 86400
INITIAL_WINDOW = 3600


@dataclass(slots=True)
class CycleReport:
    source: str
    start: int = 0
    end: int = 0
    windows: int = 0
    fetched: int = 0
    sinks: dict[str, SinkReport] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return all(r.state == "ok" for r in self.sinks.values())


class CycleObserver(Protocol):
    """Watches a cycle's progress (metrics, a progress bar); must be cheap and never raise."""

    def begin(self, start: int, end: int) -> None: ...

    def window(self, window: Window) -> None: ...

    def end(self) -> None: ...


class Pipeline:
    """Moves events from one source to its sink workers."""

    def __init__(
        self,
        settings: SourceSettings,
        client: AuditLogClient,
        workers: list[SinkWorker],
        *,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
        stall_timeout: float | None = None,
        observer: CycleObserver | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.workers = workers
        self.clock = clock
        self.stop = stop or threading.Event()
        self.stall_timeout = stall_timeout
        self.observer = observer
        self.lookback = int(settings.lookback)
        self.target = settings.window_max_events

    def _fetch(self, start: int, end: int, limit: int | None) -> list[AuditEvent]:
        return self.client.fetch_window(
            start, end, organization=self.settings.organization, limit=limit
        )

    def _resolve(self, start: int, end: int, future: Future[list[AuditEvent]]) -> Iterator[Window]:
        """The window's events; a window over the hard cap is split and fetched in halves, in order."""
        try:
            yield Window(start, end, future.result())
            return
        except WindowOverflowError:
            pass
        stack = list(reversed(split(start, end)))
        while stack:
            a, b = stack.pop()
            try:
                yield Window(a, b, self._fetch(a, b, None if b - a <= 1 else self.target * 4))
            except WindowOverflowError:
                stack.extend(reversed(split(a, b)))

    def _deliver(self, window: Window, planner: WindowPlanner, report: CycleReport) -> None:
        planner.observe(window.start, window.end, len(window.events))
        for worker in self.workers:
            worker.offer(window, self.stall_timeout)
        report.windows += 1
        report.fetched += len(window.events)
        if self.observer is not None:
            self.observer.window(window)
        log.debug("window_fetched", start=window.start, end=window.end, events=len(window.events))

    def run_cycle(self) -> CycleReport:
        """Catch every sink up to now; raises a `SourceError` if the API cannot be read."""
        end = int(self.clock())
        report = CycleReport(source=self.settings.name, end=end)
        start = min(w.cursor.high_water for w in self.workers) - self.lookback
        report.start = start
        for worker in self.workers:
            worker.start()
        try:
            if start < end and any(w.active for w in self.workers):
                if self.observer is not None:
                    self.observer.begin(start, end)
                try:
                    self._walk(start, end, report)
                finally:
                    if self.observer is not None:
                        self.observer.end()
        finally:
            for worker in self.workers:
                report.sinks[worker.name] = worker.finish()
        return report

    def _walk(self, start: int, end: int, report: CycleReport) -> None:
        planner = WindowPlanner(start, end, target=self.target, length=INITIAL_WINDOW)
        limit = self.target * 4
        with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="fetch") as pool:
            pending: deque[tuple[int, int, Future[list[AuditEvent]]]] = deque()
            try:
                while (pending or not planner.done) and not self.stop.is_set():
                    while len(pending) < self.settings.concurrency and not planner.done:
                        a, b = planner.next_window()
                        pending.append((a, b, pool.submit(self._fetch, a, b, limit)))
                    a, b, future = pending.popleft()
                    for window in self._resolve(a, b, future):
                        self._deliver(window, planner, report)
                    if not any(w.active for w in self.workers):
                        break
            finally:
                for *_, future in pending:
                    future.cancel()
        report.interrupted = self.stop.is_set()


def initial_high_water(settings: SourceSettings, now: float) -> int:
    """Where a sink without a cursor starts: `start_at`, or 24 hours ago."""
    if settings.start_at is not None:
        return int(settings.start_at.timestamp())
    return int(now) - DEFAULT_START_BACK
