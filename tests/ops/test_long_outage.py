"""A sink down for hours keeps its place and shows its lag; the others are not held back or doubled."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
from structlog.testing import capture_logs

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.cli.status import collect
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.runtime import app
from tests.conftest import KEY, config_text, write_config

HOUR = 3600


def ids(path: Path) -> Counter[str]:
    if not path.is_file():
        return Counter()
    return Counter(orjson.loads(line)["id"] for line in path.read_bytes().splitlines())


def two_file_sinks(tmp_path: Path) -> str:
    return "".join(
        f'[[sinks]]\ntype = "file"\nname = "{n}"\npath = "{tmp_path}/out/{n}.jsonl"\n\n'
        for n in ("healthy", "down")
    )


def test_sink_down_for_hours_keeps_its_place_and_catches_up(tmp_path: Path, admin_key: str) -> None:
    """Over several runs with one sink down, the healthy one gets each event once; status shows hours of lag; recovery delivers all."""
    now = int(time.time())
    with Emulator(
        api_key=KEY, events=generate_events(300, start=now - 6 * HOUR, end=now - 60, seed=4)
    ) as emu:
        text = config_text(
            emu.base_url, tmp_path, start_at=now - 6 * HOUR, sinks=two_file_sinks(tmp_path)
        )
        config = load_config(write_config(tmp_path, text))
        blocked = tmp_path / "out" / "down.jsonl"
        blocked.mkdir(parents=True)
        for _ in range(3):
            emu.add_late_events(10, max_age=300)
            assert exit_code_of_run(app.run(config, once=True)) == ExitCode.SINK_FAILED
        status = {s["name"]: s for s in collect(config)["sources"][0]["sinks"]}
        assert status["down"]["lag_seconds"] > 5 * HOUR
        assert status["healthy"]["lag_seconds"] < 600
        truth = {e["id"] for e in emu.events()}
        healthy = ids(tmp_path / "out" / "healthy.jsonl")
        assert set(healthy) == truth and max(healthy.values()) == 1
        blocked.rmdir()
        assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    assert set(ids(blocked)) == truth and max(ids(blocked).values()) == 1
    assert ids(tmp_path / "out" / "healthy.jsonl") == healthy


def test_outage_longer_than_retention_is_reported_loudly(tmp_path: Path, admin_key: str) -> None:
    """A sink further behind than source.retention gets an error line each run and a flag in status."""
    now = int(time.time())
    with Emulator(api_key=KEY, events=[]) as emu:
        text = config_text(
            emu.base_url, tmp_path, start_at=now - 40 * 86400, extra_source='retention = "30d"\n'
        )
        config = load_config(write_config(tmp_path, text))
        with capture_logs() as logs:
            app.run(config, once=True)
        flagged = [e for e in logs if e["event"] == "sink_behind_retention"]
        assert flagged and flagged[0]["sink"] == "archive" and flagged[0]["log_level"] == "error"
        assert flagged[0]["behind_days"] >= 40
