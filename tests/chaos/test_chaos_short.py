"""The chaos harness in short: a few rounds of every fault kind, and no sink may lose an event."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos import Settings, run_chaos
from bench.chaos_faults import render
from bench.chaos_receivers import rsyslog_available
from tests.sinks.rsyslog import rsyslogd_path

ROUNDS = 8
# The kinds of trouble the issue names; each must really happen in the short run.
KINDS = (
    "kill",
    "api",
    "late",
    "down",
    "busy",
    "reset",
    "dropped_answer",
    "restart",
    "ack_lost",
    "disk_full",
    "ro_state",
)


@pytest.fixture(scope="module")
def syslog() -> bool:
    if rsyslog_available():
        return True
    if os.environ.get("SHIPPER_REQUIRE_RSYSLOG") == "1":
        pytest.fail("rsyslogd is not installed, and SHIPPER_REQUIRE_RSYSLOG=1 requires it")
    return False  # the other four sinks still run; test_syslog_takes_part says why it skipped


def test_no_sink_loses_an_event_under_every_fault_kind(tmp_path: Path, syslog: bool) -> None:
    """Kills, API faults, late events, receiver outages, full disk, read-only state: 0 missing per sink."""
    settings = Settings(rounds=ROUNDS, seed=7, events=1000, span=7200, syslog=syslog)
    report = run_chaos(settings, tmp_path)
    table = render(report)
    assert report.final_exit == 0, table
    for sink, result in report.sinks.items():
        assert (result.missing, result.unreadable) == (0, 0), f"{sink}\n{table}"
    assert report.sinks["elastic"].duplicates == 0, table
    assert report.hung == 0, table
    happened = {key.split(":")[0] for key, hits in report.fault_hits.items() if hits}
    happened |= {key.split(":")[0] for key in report.fault_rounds if key.startswith("down:")}
    assert set(KINDS) <= happened, f"never happened: {set(KINDS) - happened}\n{table}"


def test_syslog_takes_part() -> None:
    """The short chaos run includes the syslog sink (a real rsyslogd) wherever rsyslogd exists."""
    assert rsyslogd_path()  # skips with the reason, or fails under SHIPPER_REQUIRE_RSYSLOG=1
    assert rsyslog_available()
