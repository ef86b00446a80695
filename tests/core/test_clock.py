"""The local clock is not trusted alone: the API's `Date` header is a second clock.

The local clock is moved with freezegun; the emulator's clock (its `Date`) is its own and is
set by the test.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from freezegun import freeze_time
from freezegun.api import _freeze_time
from structlog.testing import capture_logs

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.runtime import app
from tests.conftest import KEY, T0, config_text, write_config

HOURS_2 = 7200


def local_clock_at(when: float) -> _freeze_time:
    """The shipper's (local) clock set to `when`, ticking on from there."""
    return freeze_time(dt.datetime.fromtimestamp(when, dt.UTC), tick=True)


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


@pytest.fixture
def api() -> Iterator[Emulator]:
    """Two days of history up to T0; the API's clock reads T0."""
    events = generate_events(400, start=T0 - 2 * 86400, end=T0, seed=21)
    with Emulator(api_key=KEY, events=events) as emulator:
        emulator.clock = lambda: float(T0)
        yield emulator


def two_sinks(tmp_path: Path) -> str:
    return "".join(
        f'[[sinks]]\ntype = "file"\nname = "{name}"\npath = "{tmp_path}/out/{name}.jsonl"\n\n'
        for name in ("a", "b")
    )


def test_a_cycle_with_the_local_clock_two_hours_fast_loses_no_event(
    api: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A VM booted before NTP runs one cycle two hours fast, then one with the clock fixed:
    the events of the hour in between are all delivered (the cursor never went past the
    API's clock)."""
    config = load_config(write_config(tmp_path, config_text(api.base_url, tmp_path)))
    with local_clock_at(T0 + HOURS_2):
        assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    cursor = CursorStore(tmp_path / "state", "default").load("archive")
    assert cursor is not None and cursor.high_water <= T0
    # An hour passes (by both clocks); events keep happening.
    api.add_events(generate_events(50, start=T0, end=T0 + 3500, seed=22, id_prefix="later-"))
    api.clock = lambda: float(T0 + 3600)
    with local_clock_at(T0 + 3600):
        assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    assert ids_in(tmp_path / "out" / "audit.jsonl") == [e["id"] for e in api.events()]


def test_a_cursor_ahead_of_the_api_clock_fails_its_sink_with_a_way_out(
    api: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A cursor left in the future by an earlier fast clock is reported, not silently waited
    out (its events would be skipped); the other sink carries on."""
    config = load_config(
        write_config(tmp_path, config_text(api.base_url, tmp_path, sinks=two_sinks(tmp_path)))
    )
    CursorStore(tmp_path / "state", "default").save("a", Cursor(high_water=T0 + HOURS_2))
    with local_clock_at(T0), capture_logs() as logs:
        outcome = app.run(config, once=True)
    assert exit_code_of_run(outcome) == ExitCode.SINK_FAILED
    report = outcome.reports[0].sinks
    assert report["a"].state == "failed"
    assert report["a"].error is not None
    assert "ahead of the API's clock" in report["a"].error
    assert "NTP" in report["a"].error and "start_at" in report["a"].error
    assert report["b"].state == "ok"
    assert ids_in(tmp_path / "out" / "b.jsonl") == [e["id"] for e in api.events()]
    assert ids_in(tmp_path / "out" / "a.jsonl") == []
    assert any(e["event"] == "cursor_ahead_of_api_clock" for e in logs)


def test_the_clock_skew_is_exported_and_a_large_one_is_warned_about(
    api: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """`shipper_clock_skew_seconds` is the local clock minus the API's (from its Date); past
    the threshold a warning says NTP is required."""
    config = load_config(write_config(tmp_path, config_text(api.base_url, tmp_path)))
    text = tmp_path / "metrics.prom"
    config = config.model_copy(
        update={"metrics": config.metrics.model_copy(update={"textfile": text})}
    )
    with local_clock_at(T0 + 120), capture_logs() as logs:
        app.run(config, once=True)
    line = next(x for x in text.read_text().splitlines() if x.startswith("shipper_clock_skew"))
    assert 119 <= float(line.split()[-1]) <= 122
    warned = [e for e in logs if e["event"] == "clock_skew"]
    assert warned and warned[0]["log_level"] == "warning" and "NTP" in warned[0]["meaning"]


def test_the_emulator_dates_its_answers_by_its_own_clock(api: Emulator) -> None:
    """The emulator's Date follows its clock (and skew), not the frozen local one."""
    api.clock_skew = -60
    with local_clock_at(T0 + HOURS_2):
        answer = httpx.get(
            api.base_url + "/organization/audit_logs", headers={"authorization": f"Bearer {KEY}"}
        )
    sent = dt.datetime.strptime(answer.headers["date"], "%a, %d %b %Y %H:%M:%S GMT")
    assert sent.replace(tzinfo=dt.UTC).timestamp() == T0 - 60


def test_without_a_date_header_the_local_clock_alone_bounds_the_cycle() -> None:
    """An answer with no Date (a proxy that strips it) leaves only the local clock: said once
    per cycle, not an error."""
    from pydantic import SecretStr

    from shipper.config.settings import AuditLogSettings
    from shipper.source.audit_log.client import AuditLogClient

    empty: dict[str, object] = {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=empty))
    settings = AuditLogSettings(base_url="http://127.0.0.1:9/v1")
    client = AuditLogClient(settings, SecretStr(KEY), transport=transport)
    try:
        with capture_logs() as logs:
            assert client.api_clock_offset() is None
    finally:
        client.close()
    assert [e["event"] for e in logs] == ["api_date_missing"]


def test_the_emulator_clock_can_be_skewed_over_its_control_endpoint(api: Emulator) -> None:
    """`PUT /_emulator/clock {"skew": S}` moves the emulator's Date (for out-of-process tests)."""
    base = api.base_url.removesuffix("/v1")
    assert httpx.put(f"{base}/_emulator/clock", json={"skew": -7200}).status_code == 200
    assert api.api_time() == T0 - 7200
    assert httpx.put(f"{base}/_emulator/clock", json={"skew": "x"}).status_code == 400


def test_a_new_sink_told_to_start_in_the_future_waits_without_an_error(
    api: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A cursor ahead of the API's clock because `start_at` says so is no clock fault."""
    text = config_text(api.base_url, tmp_path, start_at=T0 + 86400)
    with local_clock_at(T0):
        outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert ids_in(tmp_path / "out" / "audit.jsonl") == []


def test_events_of_the_last_safety_lag_wait_for_the_next_run(
    api: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A run reads up to its clock minus `clock_safety_lag` (5 s): an event dated 2 s before
    the run is left to the next run, which delivers it."""
    recent = generate_events(1, start=T0 - 2, end=T0 - 1, seed=23, id_prefix="recent-")
    api.add_events(recent)
    config = load_config(write_config(tmp_path, config_text(api.base_url, tmp_path)))
    with local_clock_at(T0):
        app.run(config, once=True)
    assert recent[0]["id"] not in ids_in(tmp_path / "out" / "audit.jsonl")
    api.clock = lambda: float(T0 + 10)
    with local_clock_at(T0 + 10):
        app.run(config, once=True)
    assert ids_in(tmp_path / "out" / "audit.jsonl") == [e["id"] for e in api.events()]
