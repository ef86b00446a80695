"""bench/cloud_sentinel.py runs with small numbers and every record arrives (no timing asserted)."""

from __future__ import annotations

from bench.cloud_sentinel import measure, table


def test_sentinel_bench_runs_both_modes_and_prints_ratios() -> None:
    """Both modes store every event; batching needs fewer requests; the table has a ratio column."""
    rows = measure(60, 1)
    batched, one_by_one = rows
    assert (batched.events, one_by_one.events) == (60, 60)
    assert batched.requests == 1 and one_by_one.requests == 60
    assert "speed-up" in table(rows)
