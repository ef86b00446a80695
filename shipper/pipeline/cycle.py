"""One cycle: fetch the span every sink still needs, window by window, and fan it out.

The span runs from the oldest sink cursor minus `lookback` to the `now` read when the cycle
began: the earlier of the local clock and the API's (its `Date`), less `clock_safety_lag`.
Windows are fetched up to `concurrency` at a time, each with its passes (ordinary and
`tenant_only`) side by side, the client keeping the requests in flight to `concurrency` in all
(and fewer while the API pushes back, `shipper.source.inflight`);
they are handed to the sinks strictly in order, and each sink commits its cursor after every
window it finished (see `delivery.py`).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from shipper.config.settings import SourceSettings
from shipper.model.event import AuditEvent
from shipper.pipeline.delivery import SinkReport, SinkWorker, Window
from shipper.pipeline.windows import (
    Found,
    WindowOverflowError,
    WindowPlanner,
    assemble,
    parts_of,
)
from shipper.source.contract import PassKey, Source

log = structlog.get_logger("shipper.pipeline.cycle")

DEFAULT_START_BACK = 86400
INITIAL_WINDOW = 3600

Passes = list[Future[Found]]


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
        client: Source,
        workers: list[SinkWorker],
        *,
        clock: Callable[[], float] | None = None,
        stop: threading.Event | None = None,
        stall_timeout: float | None = None,
        observer: CycleObserver | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.workers = workers
        self.clock = clock or _local_time
        self.stop = stop or threading.Event()
        self.stall_timeout = stall_timeout
        self.observer = observer
        self.lookback = int(settings.lookback)
        self.target = settings.window_max_events
        self.skip: frozenset[str] = frozenset()  # parts every sink holds (see `run_cycle`)

    def _fetch(self, start: int, end: int, limit: int | None) -> list[AuditEvent]:
        return self.client.fetch_window(
            start, end, organization=self.settings.organization, limit=limit
        )

    def _submit(self, pool: ThreadPoolExecutor, start: int, end: int, limit: int) -> Passes:
        """Start every pass of a window, side by side; pages within a pass are sequential. Each
        pass may read up to `limit` events, their union too; when one pass overflows, the others
        give up before their next page (`abandon`).
        """
        abandon = threading.Event()
        passes = self.client.passes
        groups = [(p,) for p in passes]
        return [
            pool.submit(self._fetch_passes, start, end, group, limit=limit, abandon=abandon)
            for group in groups
        ]

    def _fetch_passes(
        self,
        start: int,
        end: int,
        group: tuple[PassKey, ...],
        *,
        limit: int,
        abandon: threading.Event,
    ) -> Found:
        found = Found()
        for index, which in enumerate(group):
            read = self.client.fetch_pass(
                start,
                end,
                which,
                limit=limit - len(found),
                organization=self.settings.organization,
                sharing=len(self.client.passes) - index,  # passes still to read
                abandon=abandon,
                skip=self.skip,
            )
            found.update(read)
            found.parts.update(parts_of([read]))
        return found

    def _resolve(self, start: int, end: int, passes: Passes, limit: int) -> Iterator[Window]:
        """The window's events; a window over the hard cap is fetched piece by piece."""
        found: list[Found] = []
        overflow: WindowOverflowError | None = None
        for future in passes:
            try:
                found.append(future.result())
            except WindowOverflowError as exc:
                # The pass that overflowed says more than the ones it made give up (no spread).
                if overflow is None or exc.spread > overflow.spread:
                    overflow = exc
        if overflow is None:
            try:
                events = assemble(found, limit)
            except WindowOverflowError as exc:
                overflow = exc
            else:
                yield Window(start, end, events, parts_of(found))
                return
        del found  # not held while the pieces are fetched
        yield from self._pieces(start, end, overflow, limit)

    def _pieces(
        self, start: int, end: int, overflow: WindowOverflowError, limit: int
    ) -> Iterator[Window]:
        """An overfull window in consecutive pieces of about `target` events.

        The first piece is sized by the density the overflow saw, each next one by the piece
        before (a `WindowPlanner` over the window). So a window grown over quiet history that
        ran into dense history overflows once, not once per piece as equal cuts by `seen` (a
        lower bound) did; and after a short burst the pieces grow again at once. A piece that
        still overflows is cut the same way. When every event the overflow saw shares one
        second, what lies before it is one piece and that second the next, streamed
        (`_stream`): a second cannot be cut (a compliance file bigger than a window).
        """
        dense = overflow.earliest
        if overflow.spread > 0 or dense is None or not start <= dense < end:
            yield from self._planned(start, end, self._first_piece(start, end, overflow), limit)
            return
        if start < dense:
            yield from self._planned(start, dense, dense - start, limit)
        yield from self._planned(dense, end, 1, limit)

    def _planned(self, start: int, end: int, length: int, limit: int) -> Iterator[Window]:
        """`[start, end)` in pieces, the first `length` long, each next one planned."""
        planner = WindowPlanner(start, end, target=self.target, length=length)
        while not planner.done:
            a, b = planner.next_window()
            count = 0
            try:
                pieces = self._stream(a, b) if b - a <= 1 else iter([self._piece(a, b, limit)])
                for window in pieces:
                    count += len(window.events)
                    yield window
            except WindowOverflowError as again:
                for window in self._pieces(a, b, again, limit):
                    count += len(window.events)
                    yield window
            planner.observe(a, b, count)

    def _piece(self, start: int, end: int, limit: int) -> Window:
        return Window(start, end, self._fetch(start, end, limit))

    def _stream(self, start: int, end: int) -> Iterator[Window]:
        """A window that cannot be cut (one second) in batches of about `target` events, each
        pass in turn: every batch but the last is delivered as not `final` (the sinks record
        its events as seen; their high water stays), the last one moves the cursors past the
        window with every part read. Memory holds a batch, not the second."""
        parts: dict[str, int] = {}
        held: Found | None = None
        for which in self.client.passes:
            for batch in self.client.stream_pass(
                start,
                end,
                which,
                batch=self.target,
                organization=self.settings.organization,
                skip=self.skip,
            ):
                if held is not None:
                    yield Window(start, end, assemble([held]), final=False)
                parts.update(batch.parts)
                held = batch
        yield Window(start, end, assemble([held] if held is not None else []), parts)

    def _first_piece(self, start: int, end: int, overflow: WindowOverflowError) -> int:
        """Long enough for about `target` events at the density seen (counted once per pass:
        errs towards smaller pieces), and for half the time before the events seen: a burst far
        into the window is then reached in a few halvings, not by growing from a sliver.
        Without a spread or times, equal cuts by what was seen."""
        passes = len(self.client.passes)
        if overflow.spread <= 0:
            pieces = math.ceil(overflow.seen * passes / self.target)
            return max((end - start) // max(pieces, 2), 1)
        by_density = int(self.target * overflow.spread / (overflow.seen * passes))
        before = (overflow.earliest - start) // 2 if overflow.earliest is not None else 0
        return max(by_density, before, 1)

    def _deliver_next(
        self,
        fetch: _Fetch,
        limit: int,
        planner: WindowPlanner,
        report: CycleReport,
    ) -> None:
        # A method of its own so the fetched passes are dropped as soon as they are delivered.
        for window in self._resolve(fetch.start, fetch.end, fetch.passes, limit):
            self._deliver(window, planner, report)
            if not any(w.active for w in self.workers):
                return  # nobody is listening: fetching the rest of a split window is waste

    def _deliver(self, window: Window, planner: WindowPlanner, report: CycleReport) -> None:
        if window.final:  # a streamed window's batches are one window to the planner
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
        local = self.clock()
        offset = self.client.api_clock_offset()
        api = None if offset is None else local + offset
        # A cursor moves to the cycle's end: past the API's clock, the events in between would
        # never be fetched. So the earlier of the two clocks, less a safety lag, bounds it.
        end = int(min(local, local if api is None else api) - self.settings.clock_safety_lag)
        report = CycleReport(source=self.settings.name, end=end)
        if api is not None:
            self._refuse_cursors_ahead(api)
        start = min(w.cursor.high_water for w in self.workers) - self.lookback
        # A source that publishes a watermark (files listed by end time) is read up to it and
        # no further: a cursor never passes what the source has finalized.
        until = self.client.final_until(start)
        if until is not None and until < end:
            end = report.end = until
        self.skip = _held_by_all(self.workers)
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
                report.sinks[worker.name] = worker.finish(self.stall_timeout)
        return report

    def _refuse_cursors_ahead(self, api_now: float) -> None:
        """Fail each sink whose cursor is ahead of the API's clock, saying how to recover.

        Such a cursor was moved there by a run whose local clock was fast; the events between
        that run and the cursor were never fetched for the sink. Waiting until the API's clock
        passes it would skip them silently, so the sink fails (the others carry on) until the
        operator restarts it from before the clock went wrong.
        """
        lag = self.settings.clock_safety_lag
        start_at = self.settings.start_at
        configured = None if start_at is None else int(start_at.timestamp())
        for worker in self.workers:
            ahead = worker.cursor.high_water - api_now
            if not worker.active or ahead <= lag:
                continue
            if worker.cursor.high_water == configured and not worker.cursor.seen:
                continue  # a new sink told to start in the future: nothing to read until then
            worker.report.state = "failed"
            worker.report.error = (
                f"cursor at {_iso(worker.cursor.high_water)} is {ahead:.0f} s ahead of the API's "
                f"clock ({_iso(api_now)}): a run had this machine's clock fast, and events after "
                "that run may not have been fetched for this sink. Fix the clock (NTP is "
                f"required), then stop shipper, delete {worker.store.path(worker.name)}, set "
                "source.start_at to before the clock went wrong and run again (it re-delivers "
                "from there: duplicates, no gap)"
            )
            log.error(
                "cursor_ahead_of_api_clock",
                source=self.settings.name,
                sink=worker.name,
                error=worker.report.error,
            )

    def _walk(self, start: int, end: int, report: CycleReport) -> None:
        lanes = self.settings.concurrency
        planner = WindowPlanner(
            start,
            end,
            target=self.target,
            length=INITIAL_WINDOW,
            lanes=lanes,
            min_events=4 * self.settings.page_size,
        )
        limit = self.target * 4
        threads = lanes * len(self.client.passes)
        with ThreadPoolExecutor(threads, thread_name_prefix="fetch") as pool:
            pending: deque[_Fetch] = deque()
            try:
                while (pending or not planner.done) and not self.stop.is_set():
                    self._top_up(pool, planner, pending, limit)
                    if not pending[0].done and not _await_any(pending):
                        continue  # a later window finished: its lane takes the next window
                    self._deliver_next(pending.popleft(), limit, planner, report)
                    if not any(w.active for w in self.workers):
                        break
            finally:
                for fetch in pending:
                    for future in fetch.passes:
                        future.cancel()
        report.interrupted = self.stop.is_set()

    def _top_up(
        self, pool: ThreadPoolExecutor, planner: WindowPlanner, pending: deque[_Fetch], limit: int
    ) -> None:
        """Start windows while fewer than the look-ahead are in flight.

        A window that finished before the ones ahead of it waits, fetched, for its turn to be
        delivered, and its lane takes the next window meanwhile: a long window at the head no
        longer idles the other lanes. Up to as many windows as are in flight may wait so; with
        one window at a time, none does (each is planned from the one before it).

        Memory stays where `window_max_events` puts it whatever the look-ahead: with more than
        two windows held at once, each is planned smaller, so that together they hold about as
        many events as four windows of the target.
        """
        lookahead = planner.lookahead
        held = 2 * lookahead if lookahead > 1 else 1
        share = max(self.target * min(held, 4) // held, planner.min_events)
        planner.retarget(min(share, self.target))
        while not planner.done and len(pending) < held:
            if sum(not fetch.done for fetch in pending) >= lookahead:
                return
            a, b = planner.next_window()
            pending.append(_Fetch(a, b, self._submit(pool, a, b, limit)))


@dataclass(frozen=True, slots=True)
class _Fetch:
    """A window being fetched: its span and its passes' futures."""

    start: int
    end: int
    passes: Passes

    @property
    def done(self) -> bool:
        return all(future.done() for future in self.passes)


def _await_any(pending: deque[_Fetch]) -> bool:
    """Wait until some window in flight finishes; whether it is the first one (the next due)."""
    running = [future for fetch in pending for future in fetch.passes if not future.done()]
    wait(running, return_when=FIRST_COMPLETED)
    return pending[0].done


def _held_by_all(workers: list[SinkWorker]) -> frozenset[str]:
    """The ids in every active sink's cursor: parts among them need not be read again."""
    held = [frozenset(w.cursor.seen) for w in workers if w.active]
    return frozenset.intersection(*held) if held else frozenset()


def _local_time() -> float:
    return time.time()  # looked up per call, so a test's freezegun moves it


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def initial_high_water(settings: SourceSettings, now: float) -> int:
    """Where a sink without a cursor starts: `start_at`, or 24 hours ago."""
    if settings.start_at is not None:
        return int(settings.start_at.timestamp())
    return int(now) - DEFAULT_START_BACK
