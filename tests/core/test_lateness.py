"""Late events: how late they were is measured, a lateness near `lookback` is warned about, and
the limit docs/delivery.md states (the previous run's clock, not the newest event) holds."""

from __future__ import annotations

from pathlib import Path

import orjson
from structlog.testing import capture_logs

from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.model.event import AuditEvent
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.delivery import SinkWorker, Window
from shipper.pipeline.sink import SinkContext
from shipper.runtime import app
from shipper.runtime.metrics import Metrics
from sinks.file.sink import FileSettings, FileSink
from tests.conftest import KEY, T0, config_text, write_config

LOOKBACK = 600
HIGH_WATER = T0


def event(event_id: str, when: int) -> AuditEvent:
    return AuditEvent(event_id, "login.failed", when, json=b'{"id":"%s"}' % event_id.encode())


def worker(tmp_path: Path, metrics: Metrics, now: float) -> SinkWorker:
    sink = FileSink(
        FileSettings(type="file", name="f", path=str(tmp_path / "out.jsonl"), format="raw"),
        SinkContext(state_dir=tmp_path),
    )
    sink.open()
    return SinkWorker(
        name="f",
        sink=sink,
        cursor=Cursor(high_water=HIGH_WATER, seen={"old": HIGH_WATER - 100}),
        store=CursorStore(tmp_path / "state", "default"),
        dead_letter_path=tmp_path / "dead.jsonl",
        lookback=LOOKBACK,
        metrics=metrics,
        clock=lambda: now,
    )


def test_events_found_below_the_cursor_have_their_lateness_measured_and_a_near_miss_warned(
    tmp_path: Path,
) -> None:
    """Each event first found below a sink's high water is observed in
    `shipper_event_lateness_seconds` (first seen minus effective_at); one later than 80 % of
    lookback is warned about. Events at or past the high water are not late."""
    metrics = Metrics()
    now = HIGH_WATER + 10
    w = worker(tmp_path, metrics, now)
    late_a, late_b = event("late-a", HIGH_WATER - 100), event("late-b", HIGH_WATER - 550)
    window = Window(
        HIGH_WATER - LOOKBACK,
        HIGH_WATER + 5,
        sorted(
            [late_a, late_b, event("old", HIGH_WATER - 100), event("new", HIGH_WATER + 1)],
            key=lambda e: (e.effective_at, e.id),
        ),
    )
    w.start()
    w.offer(window, None)
    with capture_logs() as logs:
        report = w.finish()
    w.sink.close()
    assert report.state == "ok" and report.delivered == 3
    labels = {"source": "default", "sink": "f"}
    sample = metrics.registry.get_sample_value
    assert sample("shipper_event_lateness_seconds_count", labels) == 2
    assert sample("shipper_event_lateness_seconds_sum", labels) == (110 + 560)
    warned = [e for e in logs if e["event"] == "late_events_near_lookback"]
    assert len(warned) == 1
    assert warned[0]["latest_seconds"] == 560 and warned[0]["lookback_seconds"] == LOOKBACK


def test_an_event_later_than_lookback_behind_the_last_run_is_lost_even_if_newer_than_any_delivered(
    tmp_path: Path, admin_key: str
) -> None:
    """docs/delivery.md's limit, stated truthfully: late events are caught within `lookback` of
    the previous run's clock (the cursor), not of the newest event delivered. In a quiet org an
    event dated after every delivered event but more than `lookback` before the last run's end
    is not delivered; one within `lookback` of it is."""
    quiet = generate_events(20, start=T0 - 86400, end=T0 - 3 * 3600, seed=31)
    with Emulator(api_key=KEY, events=quiet) as api:
        api.clock = lambda: float(T0)
        config = load_config(write_config(tmp_path, config_text(api.base_url, tmp_path)))
        app.run(config, once=True)  # local and API clocks agree (real time is past T0)
        cursor = CursorStore(tmp_path / "state", "default").load("archive")
        assert cursor is not None
        end = cursor.high_water
        lost = generate_events(1, start=end - 1200, end=end - 1199, seed=32, id_prefix="lost-")
        caught = generate_events(1, start=end - 300, end=end - 299, seed=33, id_prefix="caught-")
        api.add_events(lost + caught)
        app.run(config, once=True)
    delivered = {
        orjson.loads(line)["id"]
        for line in (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    }
    assert caught[0]["id"] in delivered
    assert lost[0]["id"] not in delivered


def test_a_new_sinks_first_history_is_not_late_but_later_arrivals_are_measured(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A new sink starts `lookback` before its cursor: those events are history, not late
    arrivals, and stay out of the histogram; events that appear later below the cursor count."""
    start_at = T0 - 86400
    assert [e for e in emulator.events() if start_at - LOOKBACK <= e["effective_at"] < start_at]
    text = config_text(emulator.base_url, tmp_path, start_at=start_at)
    config = load_config(write_config(tmp_path, text))
    prom = tmp_path / "metrics.prom"
    config = config.model_copy(
        update={"metrics": config.metrics.model_copy(update={"textfile": prom})}
    )

    def late_count() -> float:
        lines = [x for x in prom.read_text().splitlines() if x.startswith("shipper_event_late")]
        return sum(float(x.split()[-1]) for x in lines if "_count{" in x)

    app.run(config, once=True)
    assert late_count() == 0
    cursor = CursorStore(tmp_path / "state", "default").load("archive")
    assert cursor is not None
    emulator.add_late_events(20, max_age=300, now=cursor.high_water)
    with capture_logs() as logs:
        app.run(config, once=True)
    assert late_count() == 20
    assert not [e for e in logs if e["event"] == "late_events_near_lookback"]
