"""Cursor math and window planning: the pure core of the delivery guarantee."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.model.event import AuditEvent
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.windows import WindowPlanner


def ev(i: int, t: int) -> AuditEvent:
    return AuditEvent(id=f"e{i}", type="x.y", effective_at=t, raw={})


def test_fresh_cursor_needs_everything_from_high_water() -> None:
    """A cursor needs events at or after its high water, and nothing older than the lookback."""
    cursor = Cursor(high_water=100)
    assert cursor.needs(ev(1, 100), lookback=10)
    assert cursor.needs(ev(2, 95), lookback=10)  # inside the lookback, not seen
    assert not cursor.needs(ev(3, 89), lookback=10)


def test_advance_remembers_ids_inside_lookback_only() -> None:
    """After a window, `seen` holds exactly the delivered ids no older than high_water - lookback."""
    cursor = Cursor(high_water=0).advance([ev(1, 5), ev(2, 15), ev(3, 19)], 20, lookback=10)
    assert cursor.high_water == 20
    assert cursor.seen == {"e2": 15, "e3": 19}


def test_late_event_inside_lookback_is_delivered_once() -> None:
    """An event that appears late, behind the high water but within lookback, is delivered exactly once."""
    cursor = Cursor(high_water=0).advance([ev(1, 15)], 20, lookback=10)
    window = [ev(1, 15), ev(9, 16)]  # e9 arrived late
    pending = cursor.pending(window, lookback=10)
    assert [e.id for e in pending] == ["e9"]
    cursor = cursor.advance(pending, 30, lookback=10)
    assert cursor.pending(window, lookback=10) == []


def test_high_water_never_moves_back() -> None:
    """Re-delivering an older window does not rewind the cursor."""
    cursor = Cursor(high_water=50).advance([], 40, lookback=10)
    assert cursor.high_water == 50


@settings(max_examples=200, deadline=None)
@given(
    times=st.lists(st.integers(0, 200), min_size=0, max_size=60),
    cuts=st.lists(st.integers(1, 200), min_size=1, max_size=8),
    lookback=st.integers(0, 50),
)
def test_windows_in_order_deliver_every_event_exactly_once(
    times: list[int], cuts: list[int], lookback: int
) -> None:
    """Walking any partition of time in windows, re-walking the lookback each run, delivers each event once."""
    events = [ev(i, t) for i, t in enumerate(times)]
    delivered: list[str] = []
    cursor = Cursor(high_water=0)
    bounds = sorted({0, *cuts, 201})
    for run_end in bounds[1:]:
        start = max(cursor.high_water - lookback, 0)
        window = sorted(
            (e for e in events if start <= e.effective_at < run_end), key=lambda e: e.sort_key
        )
        pending = cursor.pending(window, lookback)
        delivered.extend(e.id for e in pending)
        cursor = cursor.advance(pending, run_end, lookback)
    assert sorted(delivered) == sorted(e.id for e in events)


@settings(max_examples=100, deadline=None)
@given(
    early=st.lists(st.integers(0, 99), max_size=20),
    late=st.lists(st.integers(0, 99), max_size=20),
    lookback=st.integers(0, 100),
)
def test_late_arrivals_within_lookback_are_never_lost(
    early: list[int], late: list[int], lookback: int
) -> None:
    """Events appearing after a run, no older than lookback behind its end, reach the next run."""
    first = [ev(i, t) for i, t in enumerate(early)]
    cursor = Cursor(high_water=0)
    cursor = cursor.advance(cursor.pending(first, lookback), 100, lookback)
    arrivals = [ev(1000 + i, t) for i, t in enumerate(late) if t >= 100 - lookback]
    window = [e for e in first + arrivals if e.effective_at >= 100 - lookback]
    assert {e.id for e in cursor.pending(window, lookback)} == {e.id for e in arrivals}


def test_planner_covers_span_without_gaps_or_overlap() -> None:
    """Windows are contiguous, half-open, and end exactly at the span's end."""
    planner = WindowPlanner(start=0, end=100_000, target=100, length=1000)
    windows = []
    while not planner.done:
        window = planner.next_window()
        windows.append(window)
        planner.observe(*window, count=10)
    assert windows[0][0] == 0 and windows[-1][1] == 100_000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(windows))


def test_planner_grows_on_sparse_and_shrinks_on_dense_windows() -> None:
    """Window length adapts toward the target number of events per window."""
    planner = WindowPlanner(start=0, end=10**9, target=1000, length=3600)
    planner.observe(0, 3600, 0)
    assert planner.length == 3600 * 8
    planner.observe(0, 3600, 4000)
    assert planner.length == 900
