"""The pipeline end to end, in process, against the loopback emulator and file sinks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import orjson

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.runtime import app
from tests.conftest import T0, config_text, write_config


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def two_sinks(tmp_path: Path) -> str:
    return "".join(
        f'[[sinks]]\ntype = "file"\nname = "{name}"\npath = "{tmp_path}/out/{name}.jsonl"\nformat = "raw"\n\n'
        for name in ("a", "b")
    )


def test_run_once_delivers_every_event_once_then_nothing_twice(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A first run delivers every event exactly once, oldest first; a second run adds no duplicates."""
    config = load_config(write_config(tmp_path, config_text(emulator.base_url, tmp_path)))
    assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    out = tmp_path / "out" / "audit.jsonl"
    assert ids_in(out) == [e["id"] for e in emulator.events()]
    assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    assert ids_in(out) == [e["id"] for e in emulator.events()]


def test_late_events_within_lookback_are_delivered_once(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """Events that appear after a run, dated within lookback of its end, reach the next run exactly once."""
    config = load_config(write_config(tmp_path, config_text(emulator.base_url, tmp_path)))
    app.run(config, once=True)
    late = emulator.add_late_events(20, max_age=300)
    app.run(config, once=True)
    app.run(config, once=True)
    ids = ids_in(tmp_path / "out" / "audit.jsonl")
    assert len(ids) == len(set(ids)) == len(emulator.events())
    assert {e["id"] for e in late} <= set(ids)


def test_small_windows_split_and_still_deliver_everything(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """With a small per-window target the span is cut into many windows (overfull ones split); nothing is lost."""
    text = config_text(
        emulator.base_url, tmp_path, extra_source="window_max_events = 100\nconcurrency = 3\n"
    )
    outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
    assert outcome.reports[0].windows > 6
    assert ids_in(tmp_path / "out" / "audit.jsonl") == [e["id"] for e in emulator.events()]


def test_failing_sink_keeps_its_place_while_the_other_advances(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A sink that cannot write keeps its cursor; the healthy one delivers all; on recovery it catches up without duplicates elsewhere."""
    config = load_config(
        write_config(tmp_path, config_text(emulator.base_url, tmp_path, sinks=two_sinks(tmp_path)))
    )
    blocked = tmp_path / "out" / "b.jsonl"
    blocked.mkdir(parents=True)  # a directory where the file should be: writes fail
    outcome = app.run(config, once=True)
    assert exit_code_of_run(outcome) == ExitCode.SINK_FAILED
    assert outcome.reports[0].sinks["b"].state == "failed"
    expected = [e["id"] for e in emulator.events()]
    assert ids_in(tmp_path / "out" / "a.jsonl") == expected
    assert CursorStore(tmp_path / "state", "default").load("b") == Cursor(high_water=T0 - 3 * 86400)
    blocked.rmdir()
    assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    assert ids_in(blocked) == expected
    assert ids_in(tmp_path / "out" / "a.jsonl") == expected


def test_stop_request_finishes_the_window_in_flight(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """Setting the stop event mid-run ends the cycle after a whole window; the next run completes the rest."""
    emulator.page_delay = 0.02
    text = config_text(
        emulator.base_url, tmp_path, extra_source="window_max_events = 100\nconcurrency = 1\n"
    )
    config = load_config(write_config(tmp_path, text))
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        outcome = app.run(config, once=True, stop=stop)
    finally:
        timer.cancel()
    assert outcome.reports[0].interrupted
    partial = ids_in(tmp_path / "out" / "audit.jsonl")
    expected = [e["id"] for e in emulator.events()]
    assert partial == expected[: len(partial)]
    emulator.page_delay = 0.0
    app.run(config, once=True)
    assert ids_in(tmp_path / "out" / "audit.jsonl") == expected


def test_follow_mode_picks_up_new_events_until_stopped(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """Follow mode polls every poll_interval and delivers events that appear between cycles."""
    config = load_config(write_config(tmp_path, config_text(emulator.base_url, tmp_path)))
    stop = threading.Event()
    cycles: list[int] = []
    added: list[dict[str, object]] = []

    def on_cycle(report: object) -> None:
        cycles.append(1)
        if len(cycles) == 1:
            added.extend(emulator.add_late_events(5, max_age=30))
        if len(cycles) >= 3:
            stop.set()

    began = time.monotonic()
    outcome = app.run(config, once=False, stop=stop, on_cycle=on_cycle)
    assert time.monotonic() - began < 30
    assert exit_code_of_run(outcome) == ExitCode.OK and len(cycles) >= 3
    ids = ids_in(tmp_path / "out" / "audit.jsonl")
    assert {e["id"] for e in added} <= set(ids) and len(ids) == len(set(ids))
