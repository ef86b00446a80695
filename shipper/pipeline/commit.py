"""The commit rule: how what a sink settled becomes durable, and in which order.

A sink settles events by delivering them (its `flush` returned) or by refusing them for good.
The commit makes that durable in this order, so a crash between any two steps re-sends events
(duplicates) and never skips one (a gap):

1. the refused events are appended, fsynced, to the sink's dead-letter file;
2. the cursor moves past the delivered and the dead-lettered events: `Cursor.advance` when the
   whole window was settled, `Cursor.record` when only part of it was (a batch of a window
   streamed in batches, or a send that failed midway, see `Progress`);
3. the new cursor is written atomically (`CursorStore.save`).

This is the only place a cursor is moved and saved during a run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shipper.model.event import AuditEvent
from shipper.pipeline import deadletter
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.sink import Progress, Rejection


@dataclass(frozen=True, slots=True)
class Committer:
    """Commits one sink's settled events (see the module's rule)."""

    sink: str
    store: CursorStore
    dead_letter_path: Path
    lookback: int
    clock: Callable[[], float]

    def window(
        self,
        cursor: Cursor,
        sent: Sequence[AuditEvent],
        rejected: Sequence[Rejection],
        window_end: int,
        parts: Mapping[str, int] | None = None,
    ) -> Cursor:
        """After the whole window ending at `window_end` (read from `parts`) was settled: every
        event `sent`, either delivered or among `rejected`."""
        deadletter.append(self.dead_letter_path, self.sink, rejected, self.clock())
        moved = cursor.advance(sent, window_end, self.lookback, parts)
        self.store.save(self.sink, moved)
        return moved

    def batch(
        self, cursor: Cursor, sent: Sequence[AuditEvent], rejected: Sequence[Rejection]
    ) -> Cursor:
        """After part of a window was settled: every event `sent`, delivered or `rejected`;
        the high water stays."""
        deadletter.append(self.dead_letter_path, self.sink, rejected, self.clock())
        moved = cursor.record(sent, self.lookback)
        self.store.save(self.sink, moved)
        return moved

    def part(self, cursor: Cursor, progress: Progress) -> Cursor:
        """After part of a window was settled before the sink failed."""
        settled = [*progress.delivered, *(r.event for r in progress.rejected)]
        return self.batch(cursor, settled, progress.rejected)
