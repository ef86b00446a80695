"""Pure cursor math and window planning (no I/O).

A sink's cursor is `(high_water, seen)`. Promise: every event with
`effective_at < high_water - lookback` has been delivered to the sink, and `seen` holds the ids
(with their times) delivered in `[high_water - lookback, high_water)`. Events can appear late, up
to `lookback` behind the newest one; `seen` is what lets a later run deliver those without
repeating the ones already delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from shipper.model import AuditEvent


@dataclass(frozen=True, slots=True)
class Cursor:
    high_water: int
    seen: dict[str, int] = field(default_factory=dict)

    def needs(self, event: AuditEvent, lookback: int) -> bool:
        """Whether this sink still has to receive `event`."""
        if event.effective_at >= self.high_water:
            return True
        if event.effective_at < self.high_water - lookback:
            return False
        return event.id not in self.seen

    def pending(self, events: Iterable[AuditEvent], lookback: int) -> list[AuditEvent]:
        return [e for e in events if self.needs(e, lookback)]

    def advance(self, delivered: Iterable[AuditEvent], window_end: int, lookback: int) -> Cursor:
        """The cursor after the whole window ending at `window_end` reached the sink."""
        high_water = max(self.high_water, window_end)
        floor = high_water - lookback
        seen = {i: t for i, t in self.seen.items() if t >= floor}
        seen.update((e.id, e.effective_at) for e in delivered if e.effective_at >= floor)
        return Cursor(high_water=high_water, seen=seen)


@dataclass(slots=True)
class WindowPlanner:
    """Cuts `[start, end)` into consecutive windows whose length adapts to the event density.

    The goal is about `target` events per window: enough to amortise requests, few enough that a
    window's events fit comfortably in memory. Sparse history grows windows fast (a backfill of a
    quiet month takes a handful of requests); a burst shrinks them.
    """

    start: int
    end: int
    target: int
    length: int = 3600
    min_length: int = 1
    max_length: int = 30 * 86400
    _next: int = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.start

    @property
    def done(self) -> bool:
        return self._next >= self.end

    def next_window(self) -> tuple[int, int]:
        start = self._next
        stop = min(start + self.length, self.end)
        self._next = stop
        return (start, stop)

    def observe(self, start: int, stop: int, count: int) -> None:
        """Adjust the length from a finished window's density (growth at most 8x at a time)."""
        span = max(stop - start, 1)
        proposed = span * 8 if count == 0 else int(span * self.target / count)
        proposed = max(min(proposed, span * 8), self.min_length)
        self.length = min(proposed, self.max_length)


def split(start: int, stop: int) -> Sequence[tuple[int, int]]:
    """Halves of a window too full to hold; a one-second window cannot be split."""
    if stop - start <= 1:
        return [(start, stop)]
    middle = start + (stop - start) // 2
    return [(start, middle), (middle, stop)]
