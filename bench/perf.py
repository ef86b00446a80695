"""The shipper against a plain sequential poller (bench/baseline.py), in one run, on loopback.

    .venv/bin/python bench/perf.py            # the full run (about fourteen minutes on two cores)
    .venv/bin/python bench/perf.py --quick    # small sizes, one round: checks that it all works

Scenarios 1-3 serve generated events from an emulator in its own process; each round runs the
baseline, then the shipper (`shipper run --once`, a raw file sink), each a fresh child process
from an empty state, and checks that both wrote every event. The table shows medians over the
rounds: wall time, CPU time (user + system), CPU per event (all of it, and past start-up: a run
with nothing to fetch is measured too and subtracted), that run's CPU and peak RSS. Scenario 4 (sinks) is in
bench/perf_sinks.py, scenario 5 (follow mode at rest) in bench/perf_idle.py. The project's
modules are byte-compiled first, as an install has them.
Printed as a markdown table; the last line names the machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.perf_procs import (
    PYTHON,
    ROOT,
    Measured,
    compile_sources,
    emulator,
    list_answers,
    machine,
    measure,
)
from shipper.runtime import logs

DAY = 86_400


@dataclass(frozen=True, slots=True)
class Variant:
    """One shipper configuration: a row of the table ([source] keys on top of the defaults)."""

    label: str
    source: str = ""


DEFAULTS = Variant("shipper (defaults: concurrency 8)")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    events: int
    days: float
    page_delay: float = 0.0
    variants: tuple[Variant, ...] = (DEFAULTS,)
    max_concurrent_lists: int | None = None  # a rate limiter in front of the emulator: 429 beyond


@dataclass
class Row:
    tool: str
    events: int
    runs: list[Measured] = field(default_factory=list)
    startup: list[Measured] = field(default_factory=list)
    written: list[int] = field(default_factory=list)  # events in the output, per run
    answered: list[tuple[int, int]] = field(default_factory=list)  # (list requests, 429s), per run

    def median(
        self, value: Callable[[Measured], float], runs: list[Measured] | None = None
    ) -> float:
        return statistics.median(value(m) for m in (self.runs if runs is None else runs))

    @property
    def cpu_us(self) -> float:
        return self.median(lambda m: m.cpu) / self.events * 1e6

    @property
    def startup_cpu(self) -> float:
        """CPU seconds of a run with nothing to fetch: what a cron run costs when nothing happened."""
        return self.median(lambda m: m.cpu, self.startup) if self.startup else 0.0

    @property
    def marginal_us(self) -> float:
        """CPU per event past start-up: (median CPU - median CPU of a run with nothing to do) / events."""
        startup = self.median(lambda m: m.cpu, self.startup) if self.startup else 0.0
        return (self.median(lambda m: m.cpu) - startup) / self.events * 1e6


def concurrency(n: int) -> Variant:
    return Variant(f"shipper (concurrency {n})", f"concurrency = {n}\n")


def full_scenarios() -> list[Scenario]:
    return [
        Scenario(
            "1. backfill 200,000 events over 30 days, no added latency",
            200_000,
            30,
            variants=(DEFAULTS, concurrency(1)),
        ),
        Scenario(
            "2. backfill 10,000 events over 30 days, 50 ms a page",
            10_000,
            30,
            0.05,
            variants=(DEFAULTS, concurrency(12), concurrency(16)),
        ),
        Scenario(
            "2b. the same behind a rate limiter: a 429 to a fifth request at once",
            10_000,
            30,
            0.05,
            variants=(DEFAULTS, concurrency(16)),
            max_concurrent_lists=4,
        ),
        Scenario(
            "2c. a longer latency-bound backfill: 50,000 events over 30 days, 50 ms a page",
            50_000,
            30,
            0.05,
        ),
        Scenario(
            "3. backfill 1,000,000 events over 30 days",
            1_000_000,
            30,
            variants=(
                DEFAULTS,
                Variant("shipper (window_max_events 2500)", "window_max_events = 2500\n"),
            ),
        ),
    ]


def quick_scenarios() -> list[Scenario]:
    return [
        Scenario("1. backfill 2,000 events, no added latency", 2_000, 2),
        Scenario("2. backfill 300 events over 2 days, 50 ms a page", 300, 2, 0.05),
        Scenario("2b. the same, a 429 to a third request at once", 300, 2, 0.05, (DEFAULTS,), 2),
    ]


def shipper_config(
    workdir: Path, base_url: str, start: int, variant: Variant, tables: str = ""
) -> Path:
    """A first run (empty state) from `start`, into one raw JSON-lines file (`tables`: more
    top-level tables, such as `[metrics]`)."""
    when = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = workdir / "shipper.toml"
    config.write_text(
        f'[source]\nbase_url = "{base_url}"\napi_key_env = "OPENAI_ADMIN_KEY"\n'
        f'start_at = "{when}"\n{variant.source}'
        f'[state]\ndir = "{workdir}/state"\n[log]\nformat = "json"\nlevel = "warning"\n{tables}'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{workdir}/out.jsonl"\nformat = "raw"\n'
    )
    return config


def lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def run_shipper(
    tmp: Path, base_url: str, start: int, variant: Variant, expect: int
) -> tuple[Measured, int]:
    """One measured `shipper run --once` from an empty state; `RuntimeError` unless it wrote `expect`."""
    workdir = Path(tempfile.mkdtemp(dir=tmp, prefix="shipper-"))
    config = shipper_config(workdir, base_url, start, variant)
    result = measure([PYTHON, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)])
    out = workdir / "out.jsonl"
    return result, _check("the shipper", lines(out) if out.exists() else 0, expect)


def run_baseline(
    tmp: Path, base_url: str, start: int, end: int, expect: int, script: str = "baseline"
) -> tuple[Measured, int]:
    """One measured run of bench/<script>.py; `RuntimeError` unless it wrote `expect` events."""
    out = Path(tempfile.mkstemp(dir=tmp, prefix=f"{script}-", suffix=".jsonl")[1])
    argv = [PYTHON, str(ROOT / "bench" / f"{script}.py"), "--base-url", base_url]
    result = measure([*argv, "--start", str(start), "--end", str(end), "--out", str(out)])
    written = lines(out)
    out.unlink()
    return result, _check(f"the {script}", written, expect)


def _check(who: str, written: int, expect: int) -> int:
    if written != expect:
        raise RuntimeError(f"{who} wrote {written} events, expected {expect}")
    return written


def run_scenario(scenario: Scenario, rounds: int, tmp: Path) -> list[Row]:
    """Alternate baseline and shipper runs (and their start-up runs) against one emulator."""
    baseline = Row("baseline (stdlib, sequential)", scenario.events)
    # The floor (bench/floor.py) is a bound, not a competitor: shown where CPU is the question.
    floor = Row("floor (httpx + msgspec, no guarantees)", scenario.events)
    with_floor = scenario.page_delay == 0 and scenario.events <= 200_000
    shippers = {v: Row(v.label, scenario.events) for v in scenario.variants}
    with emulator(
        tmp,
        events=scenario.events,
        days=scenario.days,
        page_delay=scenario.page_delay,
        max_concurrent_lists=scenario.max_concurrent_lists,
    ) as url:
        start = int(time.time() - scenario.days * DAY) - 3600
        for _ in range(rounds):
            end = int(time.time()) + 1
            _record(baseline, url, partial(run_baseline, tmp, url, start, end, scenario.events))
            baseline.startup.append(run_baseline(tmp, url, end, end, 0)[0])
            if with_floor:
                floor_run = partial(run_baseline, tmp, url, start, end, scenario.events, "floor")
                _record(floor, url, floor_run)
                floor.startup.append(run_baseline(tmp, url, end, end, 0, "floor")[0])
            for variant, row in shippers.items():
                _record(row, url, partial(run_shipper, tmp, url, start, variant, scenario.events))
                row.startup.append(run_shipper(tmp, url, end + DAY, variant, 0)[0])
    return [baseline, *([floor] if with_floor else []), *shippers.values()]


def _record(row: Row, url: str, run: Callable[[], tuple[Measured, int]]) -> None:
    """One measured run, with what the emulator answered to it."""
    requests, refused = list_answers(url)
    measured, written = run()
    after = list_answers(url)
    row.runs.append(measured)
    row.written.append(written)
    row.answered.append((after[0] - requests, after[1] - refused))


def table(scenario: Scenario, rows: list[Row]) -> str:
    limited = scenario.max_concurrent_lists is not None
    head = (
        f"**{scenario.name}**\n\n| program | wall s | CPU s | CPU µs/event | µs/event past start-up "
        "| CPU s, nothing new | peak RSS MiB |" + (" 429s / requests |" if limited else "")
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if limited else "")
    body = [
        f"| {r.tool} | {r.median(lambda m: m.wall):.2f} | {r.median(lambda m: m.cpu):.2f} "
        f"| {r.cpu_us:.1f} | {r.marginal_us:.1f} | {r.startup_cpu:.2f} "
        f"| {r.median(lambda m: m.rss_mib):.0f} |" + (f" {_refusals(r)} |" if limited else "")
        for r in rows
    ]
    return "\n".join([head, rule, *body])


def _refusals(row: Row) -> str:
    requests = statistics.median(answered[0] for answered in row.answered)
    refused = statistics.median(answered[1] for answered in row.answered)
    return f"{refused:.0f} / {requests:.0f}"


def ratios(scenario: Scenario, rows: list[Row]) -> list[str]:
    """The closing note's numbers: how the shipper compares with the baseline in this scenario."""
    base, *ships = rows
    notes = []
    for ship in ships:
        if ship.tool.startswith("floor"):
            notes.append(
                f"{scenario.name.split('.')[0]}. {ship.tool}: "
                f"{base.marginal_us / ship.marginal_us:.1f}x less CPU per event past start-up "
                "(the most any poller on this stack could reach)"
            )
            continue
        wall = base.median(lambda m: m.wall) / ship.median(lambda m: m.wall)
        notes.append(
            f"{scenario.name.split('.')[0]}. {ship.tool}: {wall:.1f}x faster (wall), "
            f"{base.cpu_us / ship.cpu_us:.1f}x less CPU per event "
            f"({base.marginal_us / ship.marginal_us:.1f}x past start-up), "
            f"peak RSS {ship.median(lambda m: m.rss_mib):.0f} MiB"
        )
    return notes


def help_startup(times: int = 5) -> str:
    """How long `shipper --help` takes: it must stay lazy (no pydantic, httpx, structlog)."""
    runs = [measure([PYTHON, "-m", "shipper.cli.main", "--help"]) for _ in range(times)]
    wall = statistics.median(m.wall for m in runs) * 1000
    cpu = statistics.median(m.cpu for m in runs) * 1000
    return f"`shipper --help` starts in {wall:.0f} ms wall, {cpu:.0f} ms CPU (median of {times})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="shipper vs a sequential stdlib poller")
    parser.add_argument("--quick", action="store_true", help="small sizes, one round")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3; quick 1)")
    parser.add_argument("--scenarios", default="12345", help="which scenarios, e.g. 12 or 4")
    parser.add_argument("--no-sinks", action="store_true", help="skip scenario 4")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    logs.configure("warning", "json")  # scenario 4 runs sinks in this process
    scenarios = quick_scenarios() if args.quick else full_scenarios()
    compile_sources()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="shipper-bench-") as tmp:
        for scenario in scenarios:
            if scenario.name[0] not in args.scenarios:
                continue
            rows = run_scenario(scenario, rounds, Path(tmp))
            print(table(scenario, rows) + "\n", flush=True)
            notes += ratios(scenario, rows)
    if "4" in args.scenarios and not args.no_sinks:
        from bench.perf_sinks import run_sinks

        notes += run_sinks(quick=args.quick)
    if "5" in args.scenarios:
        from bench.perf_idle import run_idle

        idle, idle_notes = run_idle(quick=args.quick)
        print(idle + "\n", flush=True)
        notes += idle_notes
    notes.append(help_startup())
    print("\n".join(f"- {note}" for note in notes))
    print(f"\nMachine: {machine()}. Medians of {rounds} round(s).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
