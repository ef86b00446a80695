"""bench/ runs: tiny rounds of every scenario, whose event counts must match (no timing asserted)."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from bench.perf import DEFAULTS, Scenario, Variant, run_scenario, run_shipper, table
from bench.perf_idle import measure_idle
from bench.perf_idle import table as idle_table
from bench.perf_procs import PYTHON, emulator, measure
from bench.perf_sinks import events, run_http, run_syslog
from shipper.testing.receivers.rsyslog import rsyslogd_path


def test_backfill_rounds_run_and_every_program_writes_every_event(tmp_path: Path) -> None:
    """One round of a backfill scenario: the baseline, the floor and the shipper write all events."""
    scenario = Scenario("smoke", 400, 1, variants=(DEFAULTS, Variant("c2", "concurrency = 2\n")))
    rows = run_scenario(scenario, 1, tmp_path)
    assert [row.written for row in rows] == [[400], [400], [400], [400]]
    assert rows[1].tool.startswith("floor")
    assert all(len(row.startup) == 1 and row.runs[0].cpu > 0 for row in rows)
    assert "| baseline (stdlib, sequential) |" in table(scenario, rows)


def test_latency_scenario_runs_with_a_page_delay(tmp_path: Path) -> None:
    """The latency-bound scenario (delay per page) completes with every event."""
    scenario = Scenario("smoke latency", 150, 1, page_delay=0.02)
    rows = run_scenario(scenario, 1, tmp_path)
    assert [row.written for row in rows] == [[150], [150]]


def test_rate_limited_scenario_counts_what_the_limiter_refused(tmp_path: Path) -> None:
    """Behind the emulator's limiter every program still writes every event; the table shows
    each one's 429s against its requests (none for the one-at-a-time baseline)."""
    scenario = Scenario("smoke limited", 150, 1, page_delay=0.02, max_concurrent_lists=1)
    rows = run_scenario(scenario, 1, tmp_path)
    assert [row.written for row in rows] == [[150], [150]]
    (base_requests, base_refused), (requests, refused) = rows[0].answered[0], rows[1].answered[0]
    assert base_refused == 0 and base_requests >= 2
    assert requests > refused >= 0
    assert f"| 0 / {base_requests} |" in table(scenario, rows)


def test_a_measured_programs_peak_rss_is_its_own() -> None:
    """Linux charges a process that execs with the peak RSS of the memory it replaced: started
    straight from a large benchmark process, a tiny program reported the benchmark's peak."""
    ballast = bytearray(64 << 20)
    ballast[::4096] = b"\x01" * len(range(0, len(ballast), 4096))  # make every page resident
    parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tiny = measure([PYTHON, "-S", "-c", "pass"])
    assert tiny.rss_mib < 30 < parent
    assert tiny.wall > 0 and tiny.cpu > 0


def test_a_short_count_fails_the_benchmark(tmp_path: Path) -> None:
    """A program that wrote fewer events than the emulator holds makes the benchmark fail."""
    with (
        emulator(tmp_path, events=50, days=1) as url,
        pytest.raises(RuntimeError, match="wrote 50 events, expected 51"),
    ):
        run_shipper(tmp_path, url, 0, DEFAULTS, 51)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="scenario 5 reads /proc")
def test_at_rest_scenario_watches_follow_mode_then_cron_runs(tmp_path: Path) -> None:
    """Scenario 5: follow mode catches up, polls with nothing new and stays up; the cron runs
    from its caught-up state deliver nothing again (else the scenario fails)."""
    follow, cron = measure_idle(tmp_path, (1.0,), seconds=3.0, cron_runs=1, events=50)
    assert follow.cycles >= 1 and follow.rss_mib > 0
    assert cron.cycles == 1 and cron.cpu > 0
    assert "| follow, poll_interval 1 s |" in idle_table([follow, cron])


def test_http_sinks_deliver_every_event_batched_and_one_by_one() -> None:
    """Scenario 4 for HEC, _bulk and webhook: the receiver counts every event in both modes."""
    results = run_http(events(120), events(15))
    assert {(r.sink.split()[0], r.mode, r.events) for r in results} == {
        (sink, mode, count)
        for sink in ("splunk_hec", "elasticsearch", "webhook")
        for mode, count in (("batched + gzip", 120), ("one per request", 15))
    }


def test_syslog_sink_delivers_every_event_to_rsyslog() -> None:
    """Scenario 4 for syslog over TCP: rsyslog writes every message, batched and one per write."""
    rsyslogd_path()  # skips when rsyslogd is not installed
    results = run_syslog(events(120), events(15))
    assert [(r.mode, r.events) for r in results] == [("batched", 120), ("one per write", 15)]


def test_help_imports_nothing_heavy() -> None:
    """`shipper --help` stays lazy: pydantic, httpx, structlog and the pipeline are not imported."""
    probe = (
        "import sys\n"
        "from shipper.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('pydantic', 'httpx', 'structlog', 'orjson', 'shipper.pipeline.cycle', 'shipper.config.settings')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
