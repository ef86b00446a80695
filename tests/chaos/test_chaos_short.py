"""The chaos harness in short: a few rounds of every fault kind, and no sink may lose an event."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos import Settings, run_chaos
from bench.chaos_faults import kind_of, render
from bench.chaos_receivers import rsyslog_available
from shipper.testing.receivers.rsyslog import rsyslogd_path

ROUNDS = 11  # 3 rounds for the kinds that end a run, then 8: one per slot of the busiest sink
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
# Added for issue 16. Until its product fixes are merged, these lose events, hang or break a
# promise (see the fault-injection harness in docs/development.md): stall and close (syslog),
# clock, rotate, poison_entry, poison_event, refuse, trickle and stop.
NEW_KINDS = (
    "stall",
    "close",
    "clock",
    "rotate",
    "poison_entry",
    "poison_event",
    "refuse",
    "trickle",
    "stop",
)
SYSLOG_ONLY = ("stall", "close")


@pytest.fixture(scope="module")
def syslog() -> bool:
    if rsyslog_available():
        return True
    if os.environ.get("SHIPPER_REQUIRE_RSYSLOG") == "1":
        pytest.fail("rsyslogd is not installed, and SHIPPER_REQUIRE_RSYSLOG=1 requires it")
    return False  # the other four sinks still run; test_syslog_takes_part says why it skipped


# Eleven rounds of runs, kills and restarts take 90 to 110 s on 2 cores: the suite's 120 s bound
# is too close for a loaded machine.
@pytest.mark.timeout(300)
def test_no_sink_loses_an_event_under_every_fault_kind(tmp_path: Path, syslog: bool) -> None:
    """Every fault kind, old and new, happens; then 0 missing per sink and no broken promise."""
    settings = Settings(rounds=ROUNDS, seed=7, events=1000, span=7200, syslog=syslog)
    report = run_chaos(settings, tmp_path)
    table = render(report)
    assert report.final_exit == 0, table
    for sink, result in report.sinks.items():
        assert (result.missing, result.unreadable) == (0, 0), f"{sink}\n{table}"
    assert report.sinks["elastic"].duplicates == 0, table
    assert report.hung == 0, table
    assert report.problems == [], table
    happened = {kind_of(key) for key, hits in report.fault_hits.items() if hits}
    happened |= {kind_of(key) for key in report.fault_rounds if key.startswith("down:")}
    wanted = {*KINDS, *NEW_KINDS} - (set() if syslog else set(SYSLOG_ONLY))
    assert wanted <= happened, f"never happened: {wanted - happened}\n{table}"


def test_syslog_takes_part() -> None:
    """The short chaos run includes the syslog sink (a real rsyslogd) wherever rsyslogd exists."""
    assert rsyslogd_path()  # skips with the reason, or fails under SHIPPER_REQUIRE_RSYSLOG=1
    assert rsyslog_available()
