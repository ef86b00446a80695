"""bench/cloud_secops.py runs with small numbers: every mode imports every event (no timing asserted)."""

from __future__ import annotations

from bench.cloud_secops import MODES, ONE_BY_ONE, run, table


def test_every_mode_imports_every_event_and_the_table_has_ratios() -> None:
    """A tiny round of each mode: counts match, one-per-event makes one request per event."""
    results = run(60, 12)
    assert [r.mode for r in results] == list(MODES)
    by_mode = {r.mode: r for r in results}
    assert by_mode[ONE_BY_ONE].requests == 12
    assert all(r.requests == 1 for m, r in by_mode.items() if m != ONE_BY_ONE)
    text = table(results)
    assert "x one-per-event" in text and text.count("\n") == len(MODES) + 1
