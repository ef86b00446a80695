"""A sink's cursor: what it has received, as a value with pure transitions (no I/O).

It is persisted by `pipeline.cursor_store` and moved only by `pipeline.commit`.

A sink's cursor is `(high_water, seen)`. Promise: every event with
`effective_at < high_water - lookback` has been delivered to the sink, and `seen` holds the ids
(with their times) delivered at or after `high_water - lookback`: those in
`[high_water - lookback, high_water)`, and those of a window the sink took only part of before it
failed (`record`), which may lie at or past `high_water`. Every id in `seen` was delivered (or
dead-lettered). Events can appear late, up to `lookback` behind the newest one; `seen` is what lets
a later run deliver those, and the rest of a part-delivered window, without repeating the ones
already delivered. A window read in parts (the compliance source's files) also leaves the ids
of its parts in `seen`, at the part's time, once the whole window reached the sink: a part every
sink holds is not read again (`skip`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shipper.model.event import AuditEvent

_NEVER = -(1 << 62)  # older than any event


@dataclass(frozen=True, slots=True)
class Cursor:
    high_water: int
    seen: dict[str, int] = field(default_factory=dict)

    def needs(self, event: AuditEvent, lookback: int) -> bool:
        """Whether this sink still has to receive `event`."""
        return event.effective_at >= self.high_water - lookback and event.id not in self.seen

    def pending(
        self, events: Iterable[AuditEvent], lookback: int, window_start: int | None = None
    ) -> list[AuditEvent]:
        """The events of `events` this sink still needs (`needs`, inlined: it runs per event).

        An event older than `window_start`, the start of the window it was listed in, is
        needed too: the API listed it outside its window, so no earlier window may have held it.
        """
        floor, seen = self.high_water - lookback, self.seen
        below = _NEVER if window_start is None else min(floor, window_start)
        return [
            e
            for e in events
            if (e.effective_at >= floor and e.id not in seen) or e.effective_at < below
        ]

    def record(self, delivered: Iterable[AuditEvent], lookback: int) -> Cursor:
        """The cursor after part of a window reached the sink: `high_water` stays, `seen` grows."""
        floor = self.high_water - lookback
        seen = dict(self.seen)
        seen.update((e.id, e.effective_at) for e in delivered if e.effective_at >= floor)
        return Cursor(high_water=self.high_water, seen=seen)

    def advance(
        self,
        delivered: Iterable[AuditEvent],
        window_end: int,
        lookback: int,
        parts: Mapping[str, int] | None = None,
    ) -> Cursor:
        """The cursor after the whole window ending at `window_end` reached the sink, with the
        `parts` (id -> time) it was read from."""
        high_water = max(self.high_water, window_end)
        floor = high_water - lookback
        seen = {i: t for i, t in self.seen.items() if t >= floor}
        seen.update((e.id, e.effective_at) for e in delivered if e.effective_at >= floor)
        if parts:
            seen.update((i, t) for i, t in parts.items() if t >= floor)
        return Cursor(high_water=high_water, seen=seen)
