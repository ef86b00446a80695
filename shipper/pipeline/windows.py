"""Window planning and window assembly (no I/O); the cursor itself is `pipeline.cursor`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter

from shipper.model.event import AuditEvent


class Found(dict[str, AuditEvent]):
    """One pass's events by id, and `parts`: for a source that reads in parts (the compliance
    source's files), the id of each part read whole in this pass and its time (seconds).

    The pipeline records a window's parts in a sink's cursor once the whole window reached the
    sink, and hands back those every sink has (`skip`), so a re-read window does not download
    them again. A plain dict is a `Found` without parts.
    """

    __slots__ = ("parts",)

    def __init__(self, *args: object, **kwargs: AuditEvent) -> None:
        super().__init__(*args, **kwargs)
        self.parts: dict[str, int] = {}


def parts_of(passes: Iterable[Mapping[str, AuditEvent]]) -> dict[str, int]:
    """The parts read whole by any of a window's passes."""
    parts: dict[str, int] = {}
    for found in passes:
        parts.update(getattr(found, "parts", {}))
    return parts


_SORT_KEY = attrgetter("effective_at", "id")


class WindowOverflowError(Exception):
    """A window holds more events than the caller allowed; split it and try again.

    `seen` is how many events one pass had read when it gave up: the window holds at least
    that many. `spread` is how many seconds those events span (0: unknown): read as a density,
    it tells how finely to cut a window that is far fuller than `seen` (one grown over quiet
    history that ran into dense history), so that it overflows once, not once per piece.
    """

    def __init__(
        self, message: str, seen: int = 0, spread: int = 0, earliest: int | None = None
    ) -> None:
        super().__init__(message)
        self.seen = seen
        self.spread = spread
        self.earliest = earliest  # the oldest effective_at seen


def overflow_error(message: str, found: Mapping[str, AuditEvent]) -> WindowOverflowError:
    """The overflow of a window or pass that had read `found`, with what it saw of them."""
    times = [event.effective_at for event in found.values()]
    if not times:
        return WindowOverflowError(message)
    return WindowOverflowError(message, len(found), max(times) - min(times), min(times))


def assemble(
    passes: Iterable[Mapping[str, AuditEvent]], limit: int | None = None
) -> list[AuditEvent]:
    """A window's events from its passes: one per id, oldest first by (effective_at, id)."""
    found: dict[str, AuditEvent] = {}
    for events in passes:
        found.update(events)
    if limit is not None and len(found) > limit:
        raise overflow_error(f"more than {limit} events in one window", found)
    return sorted(found.values(), key=_SORT_KEY)


@dataclass(slots=True)
class WindowPlanner:
    """Cuts `[start, end)` into consecutive windows whose length adapts to the event density.

    The goal is about `target` events per window: enough to amortise requests, few enough that a
    window's events fit comfortably in memory. Sparse history grows windows fast (a backfill of a
    quiet month takes a handful of requests); a burst shrinks them.

    With `lanes` windows fetched at once, the end of the span is cut finer (guided
    self-scheduling: no window takes more than 1/lanes of what remains), so the last windows run
    side by side instead of one long window paging alone; never below about `min_events` events,
    where a window is too small to be worth its requests. Until a window has held an event,
    windows go one at a time (`lookahead`): lengths grown over empty history must not be
    repeated `lanes` times into the first dense stretch, `lanes` windows of up to four times
    the target each.
    """

    start: int
    end: int
    target: int
    length: int = 3600
    min_length: int = 1
    max_length: int = 30 * 86400
    lanes: int = 1
    min_events: int = 400
    _next: int = field(init=False)
    _density: float = field(init=False, default=0.0)  # events per second last seen; 0: unknown
    _found_any: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self._next = self.start

    @property
    def done(self) -> bool:
        return self._next >= self.end

    @property
    def lookahead(self) -> int:
        """How many windows may be fetched at once now."""
        return self.lanes if self._found_any else 1

    def next_window(self) -> tuple[int, int]:
        start = self._next
        stop = min(start + min(self.length, self._share(start)), self.end)
        self._next = stop
        return (start, stop)

    def _share(self, start: int) -> int:
        if self.lanes <= 1 or self._density <= 0:
            return self.length
        remaining = self.end - start
        worth_it = int(self.min_events / self._density)
        return max(-(-remaining // self.lanes), worth_it, self.min_length)

    def retarget(self, target: int) -> None:
        """Aim at `target` events per window from the next one on (the length scaled to match)."""
        if target != self.target:
            self.length = max(self.length * target // self.target, self.min_length)
            self.target = target

    def observe(self, start: int, stop: int, count: int) -> None:
        """Adjust the length from a finished window's density (growth at most 8x at a time)."""
        span = max(stop - start, 1)
        proposed = span * 8 if count == 0 else int(span * self.target / count)
        proposed = max(min(proposed, span * 8), self.min_length)
        self.length = min(proposed, self.max_length)
        self._density = count / span
        self._found_any = self._found_any or count > 0
