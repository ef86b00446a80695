"""A cursor that records part of a window: what it holds is never sent again, nothing else is skipped."""

from __future__ import annotations

from shipper.model.event import AuditEvent
from shipper.pipeline.cursor import Cursor

LOOKBACK = 600


def event(i: int, at: int) -> AuditEvent:
    return AuditEvent.from_api(
        {
            "id": f"audit_log-{i}",
            "object": "organization.audit_log",
            "type": "x",
            "effective_at": at,
        }
    )


def test_ids_recorded_past_high_water_are_not_pending_and_the_rest_still_are() -> None:
    """`record` keeps `high_water` and skips only the recorded ids of the window on the next try."""
    cursor = Cursor(high_water=10_000)
    window = [event(i, 10_000 + i) for i in range(10)]
    partial = cursor.record(window[:4], LOOKBACK)
    assert partial.high_water == 10_000
    assert partial.pending(window, LOOKBACK) == window[4:]
    assert [e for e in window if partial.needs(e, LOOKBACK)] == window[4:]


def test_recorded_ids_survive_the_advance_over_a_shorter_window() -> None:
    """A next run cutting windows differently still skips what was recorded beyond its first one."""
    window = [event(i, 10_000 + i * 100) for i in range(10)]
    partial = Cursor(high_water=10_000).record(window, LOOKBACK)
    advanced = partial.advance([], 10_500, LOOKBACK)  # a window [10_000, 10_500) with nothing left
    assert advanced.pending(window, LOOKBACK) == []
    assert advanced.advance([], 20_000, LOOKBACK).seen == {
        e.id: e.effective_at for e in window if e.effective_at >= 20_000 - LOOKBACK
    }
