"""bench/cloud_datadog_sumo.py runs: a tiny round into each fake, every event counted (no timing)."""

from __future__ import annotations

from bench.cloud_datadog_sumo import measure, table


def test_each_sink_delivers_every_event_in_both_modes_and_the_table_shows_ratios() -> None:
    """Batched and one-per-event runs into both fakes deliver all events; one-per-event makes one
    request per event, batched far fewer; the table has a ratio column with 1.0x as the base."""
    results = measure(300, 20)
    assert [(r.sink, r.mode, r.events) for r in results] == [
        ("datadog", "batched", 300),
        ("datadog", "one per event", 20),
        ("sumologic", "batched", 300),
        ("sumologic", "one per event", 20),
    ]
    single = [r for r in results if r.mode == "one per event"]
    assert all(r.requests == r.events for r in single)
    assert all(r.requests < r.events for r in results if r.mode == "batched")
    text = table(results)
    assert "| vs one per event |" in text and text.count("| 1.0x |") == 2
