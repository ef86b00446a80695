"""One sink's side of the pipeline: a worker thread that delivers windows in order and commits.

Each sink has its own worker, queue and cursor, so one slow or failing sink never holds back
another: a sink whose queue stays full past the stall timeout is marked lagging and skips the
rest of the cycle (its cursor stays on the last window it finished; the next cycle resumes it).
Skipping is sticky within a cycle because a cursor may only move over contiguous windows.
A stop request abandons a sink's window in flight (`Interrupted`: its cursor stays) and every
wait for a sink's queue.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path

import structlog

from shipper.errors import Interrupted, SinkError, SinkRefusalsUnexplainedError
from shipper.model.event import AuditEvent
from shipper.pipeline.commit import Committer
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.privacy import SinkView, prepare
from shipper.pipeline.sink import Progress, Rejection, Sink
from shipper.runtime import stopping
from shipper.runtime.metrics import Metrics
from shipper.secrets import redact

log = structlog.get_logger("shipper.pipeline.delivery")

# Windows waiting for a sink beyond the one it is delivering; the fetch side already holds up to
# twice `concurrency` windows ahead, so a deeper queue would only hold more events in memory.
MAX_QUEUED_WINDOWS = 1
# Refused-but-unexplained events one window may hand to the next; more is not a lone bad event.
MAX_CARRIED_EVENTS = 100

# How often a wait for room in a sink's queue looks at the stop request.
QUEUE_WAIT_SLICE = 0.25

# A late event this close to `lookback` (as a fraction of it) is warned about.
LATENESS_WARNING = 0.8
_effective_at = attrgetter("effective_at")


@dataclass(frozen=True, slots=True)
class Window:
    start: int
    end: int
    events: list[AuditEvent]
    # The parts (files) the window was read from, whole: id -> time (see `Cursor.advance`).
    parts: Mapping[str, int] = field(default_factory=dict)
    # False for a batch of a window streamed in batches (one second holding more events than
    # fit in memory at once): the sink records its events as seen, and only the window's last
    # batch (final) moves the high water.
    final: bool = True


@dataclass(slots=True)
class SinkReport:
    delivered: int = 0
    dead_lettered: int = 0
    windows: int = 0
    state: str = "ok"  # ok | failed | lagging | interrupted
    error: str | None = None


@dataclass(slots=True)
class SinkWorker:
    name: str
    sink: Sink
    cursor: Cursor
    store: CursorStore
    dead_letter_path: Path
    lookback: int
    source: str = "default"
    metrics: Metrics | None = None
    clock: Callable[[], float] = time.time
    report: SinkReport = field(default_factory=SinkReport)
    # A cursor made this run: the sink starts `lookback` before its high water, so what it is
    # given below that is history, not late arrivals (until the high water first moves).
    new_cursor: bool = False
    # The sink's event types and privacy rules (None: it sees every event as the source read it).
    view: SinkView | None = None
    _queue: queue.Queue[Window | None] = field(
        default_factory=lambda: queue.Queue(MAX_QUEUED_WINDOWS)
    )
    _thread: threading.Thread | None = None
    _carried: Window | None = None
    _carried_error: str = ""

    @property
    def _committer(self) -> Committer:
        return Committer(self.name, self.store, self.dead_letter_path, self.lookback, self.clock)

    @property
    def active(self) -> bool:
        return self.report.state == "ok"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"sink-{self.name}", daemon=True)
        self._thread.start()

    def offer(self, window: Window, stall_timeout: float | None) -> None:
        """Queue `window`; after `stall_timeout` seconds of a full queue, mark the sink lagging."""
        if not self.active:
            return
        give_up = None if stall_timeout is None else time.monotonic() + stall_timeout
        while True:
            left = QUEUE_WAIT_SLICE if give_up is None else give_up - time.monotonic()
            try:
                self._queue.put(window, timeout=max(min(left, QUEUE_WAIT_SLICE), 0.0))
                return
            except queue.Full:
                if stopping.requested():
                    self.report.state = "interrupted"
                    return
                if give_up is not None and time.monotonic() >= give_up:
                    self.report.state = "lagging"
                    log.warning("sink_lagging", sink=self.name, stalled_seconds=stall_timeout)
                    return

    @property
    def busy(self) -> bool:
        """Whether the worker thread is still delivering (after `finish` gave up waiting)."""
        return self._thread is not None and self._thread.is_alive()

    def finish(self, timeout: float | None = None) -> SinkReport:
        """Let the worker drain what is queued, then stop it.

        With `timeout`, wait no longer: a sink still delivering then finishes its window in
        flight in the background (`busy`; the next cycles leave it alone until it is done) and
        drops the windows queued behind it (its cursor stops before them), so a hung receiver
        does not hold back the next cycle and the other sinks.
        """
        if timeout is None:
            self._queue.put(None)
            if self._thread is not None:
                self._thread.join()
            return self.report
        if self.report.state == "lagging":
            timeout = 0.0  # it had its stall timeout in this cycle already
        give_up = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()  # the window behind the one in flight: left for later
            self._queue.put_nowait(None)  # only this thread puts: there is room now
        if self._thread is not None:
            self._thread.join(max(give_up - time.monotonic(), 0.0))
        if self.busy and self.report.state == "ok":
            self.report.state = "lagging"
            log.warning("sink_busy", sink=self.name, waited_seconds=timeout)
        return self.report

    def _loop(self) -> None:
        while (window := self._queue.get()) is not None:
            if self.report.state in ("failed", "interrupted"):
                continue
            if (carried := self._carried) is not None:  # refused events awaiting evidence
                fresh = self.cursor.pending(window.events, self.lookback)
                self._carried = Window(
                    carried.start,
                    window.end,
                    carried.events + fresh,
                    {**carried.parts, **window.parts},
                    window.final,
                )
                if not fresh:
                    continue  # nothing new to send beside them: wait for a window that has some
                window, self._carried = self._carried, None
            try:
                self._deliver(window)
            except SinkRefusalsUnexplainedError as exc:
                self._carry(window, exc)
            except Interrupted:
                self.report.state = "interrupted"
                log.info("sink_window_abandoned", sink=self.name, reason="stop requested")
            except SinkError as exc:
                if exc.progress is not None:
                    self._record(exc.progress)
                self._fail(str(exc))
            except OSError as exc:  # disk full, read-only state directory, ...
                self._fail(f"{type(exc).__name__}: {exc.strerror or exc}")
            except Exception as exc:  # a bug in a sink must not take the others down
                log.exception("sink_crashed", sink=self.name)
                self._fail(f"unexpected {type(exc).__name__}: {exc}")
        if self._carried is not None:
            self._carried = None
            self._fail(self._carried_error)

    def _carry(self, window: Window, exc: SinkRefusalsUnexplainedError) -> None:
        """Hold refused events nothing could blame yet, to send them with the next window.

        A lone event a receiver refuses proves nothing (the receiver may refuse everything);
        sent beside later events that get through, it is blamed and dead-lettered instead of
        wedging the sink. The cursor does not move past it meanwhile.
        """
        if exc.progress is not None:
            self._record(exc.progress)
        left = self.cursor.pending(window.events, self.lookback)
        if self.view is not None:  # types the sink does not take are settled with any window
            left = [e for e in left if self.view.takes(e)]
        if len(left) > MAX_CARRIED_EVENTS:
            self._fail(str(exc))
            return
        self._carried = Window(window.start, window.end, left, window.parts, window.final)
        self._carried_error = str(exc)
        log.info("refused_events_carried", sink=self.name, events=len(left))

    def _measure_lateness(self, todo: list[AuditEvent]) -> None:
        """Observe how late each event first found below the high water arrived (first seen
        minus effective_at); warn when one comes near `lookback`, past which it would be lost.

        `todo` is sorted by effective_at (as a window is), so the late ones are its head.
        """
        below = bisect_left(todo, self.cursor.high_water, key=_effective_at)
        if not below:
            return
        now = self.clock()
        lateness = [now - event.effective_at for event in todo[:below]]
        if self.metrics is not None:
            histogram = self.metrics.lateness.labels(self.source, self.name)
            for seconds in lateness:
                histogram.observe(seconds)
        latest = max(lateness)
        if latest > LATENESS_WARNING * self.lookback:
            log.warning(
                "late_events_near_lookback",
                sink=self.name,
                events=below,
                latest_seconds=round(latest),
                lookback_seconds=self.lookback,
                meaning="events appeared this long after their effective_at; one later than "
                "lookback would not be delivered: raise source.lookback",
            )

    def _fail(self, message: str) -> None:
        self.report.state = "failed"
        self.report.error = redact(message)
        log.error("sink_failed", sink=self.name, error=self.report.error)

    def _record(self, progress: Progress) -> None:
        """Keep what a failed send settled, so the next attempt at the window sends only the rest."""
        if not (progress.delivered or progress.rejected):
            return
        try:
            self.cursor = self._committer.part(self.cursor, progress)
        except OSError as exc:  # the window is sent again whole: duplicates, never a gap
            log.warning("sink_progress_not_saved", sink=self.name, error=str(exc))
            return
        delivered, dead = len(progress.delivered), len(progress.rejected)
        self.report.delivered += delivered
        self.report.dead_lettered += dead
        if self.metrics is not None:
            self.metrics.delivered.labels(self.source, self.name).inc(delivered)
            self.metrics.dead_lettered.labels(self.source, self.name).inc(dead)

    def _deliver(self, window: Window) -> None:
        todo = self.cursor.pending(window.events, self.lookback, window.start)
        if not self.new_cursor:
            self._measure_lateness(todo)
        # Before the sink: it, every format it renders and its dead letters see only the edit.
        send, withheld = prepare(self.view, todo)
        rejected = [Rejection(event, reason) for event, reason in withheld]
        offered = len(send) + len(rejected)  # the rest were of types this sink does not take
        if send:
            rejected += self.sink.send(send)
            self.sink.flush()
        before = self.cursor
        # Events of types the sink does not take are settled too: the cursor moves past them.
        if window.final:
            self.cursor = self._committer.window(before, todo, rejected, window.end, window.parts)
        else:
            self.cursor = self._committer.batch(before, todo, rejected)
        self.new_cursor = self.new_cursor and self.cursor.high_water == before.high_water
        delivered = offered - len(rejected)
        self.report.delivered += delivered
        self.report.dead_lettered += len(rejected)
        self.report.windows += 1
        if self.metrics is not None:
            self.metrics.liveness.beat()
            labels = (self.source, self.name)
            self.metrics.delivered.labels(*labels).inc(delivered)
            self.metrics.dead_lettered.labels(*labels).inc(len(rejected))
            self.metrics.lag.labels(*labels).set(self.clock() - self.cursor.high_water)
        if rejected:
            log.warning(
                "events_dead_lettered",
                sink=self.name,
                count=len(rejected),
                file=str(self.dead_letter_path),
            )
