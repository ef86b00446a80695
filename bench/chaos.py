"""Fault-injection harness: break everything around the real CLI, then prove nothing was lost.

    .venv/bin/python bench/chaos.py --rounds 50 --seed 1

Each round runs `shipper run --once` (a subprocess) against the emulator and all five sinks'
receivers while injecting, at random: SIGKILL, API faults, late events, receivers down, busy,
resetting, dropping answers or restarting, lost HEC acks, a full disk and a read-only state
directory. Mid-run faults count only if the run was still going at their instant. Then every
fault is cleared, a final clean run must exit 0, and each receiver is compared with the
emulator's ground truth. Exit status 1 if a sink misses an event or Elasticsearch holds a
duplicate. The plan is seeded; what fires also depends on timing (see `Planner`).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench/chaos.py` as a script

from bench.chaos_faults import FsFaults, Planner, Report, RoundPlan, render
from bench.chaos_receivers import ENV, ChaosReceivers, SinkResult, dead_letters, rsyslog_available
from shipper.emulator import Emulator, generate_events

ROOT = Path(__file__).resolve().parents[1]
KEY, KEY_ENV = "sk-admin-chaos-0123456789abcdefSECRET", "CHAOS_ADMIN_KEY"
# A short lookback keeps the re-read span (and so each run) short; late events stay within it.
LOOKBACK, LATE_MAX_AGE = 60, 30
CLOCK_SAFETY_LAG = 5  # the shipper's default: a run reads only up to its clock minus this
RUN_ONCE = ("-m", "shipper.cli", "run", "--once", "--config")
Action = tuple[float, str, Callable[[], bool]]  # when (s into the run), fault key, do it


@dataclass(frozen=True)
class Settings:
    """One chaos run's knobs."""

    rounds: int = 50
    seed: int = 1
    events: int = 3000  # initial history, spread over the last `span` seconds
    span: int = 86_400
    page_delay: float = 0.02  # per API page: runs last long enough to be killed
    round_timeout: float = 90.0  # a run still going after this is a hang: killed and reported
    syslog: bool = True


class Chaos:
    """Drives the rounds in `work`; `run()` returns the report."""

    def __init__(self, settings: Settings, work: Path) -> None:
        self.s, self.work = settings, work
        self.rng = random.Random(settings.seed)  # reproducible chaos, not secrets
        self.config, self.logs = work / "shipper.toml", work / "logs"
        self.now = int(time.time())
        self.report = Report(rounds=settings.rounds, seed=settings.seed)
        self._this_round: Counter[str] = Counter()  # what really happened this round
        self._lengths = [3.0]  # seconds the recent unkilled runs took: scales fault instants

    def _hit(self, key: str, count: int = 1) -> None:
        self.report.hit(key, count)
        self._this_round[key] += count

    def run(self) -> Report:
        began = time.monotonic()
        history = generate_events(
            self.s.events, start=self.now - self.s.span, end=self.now - 120, seed=self.s.seed
        )
        with ExitStack() as stack:
            emu = Emulator(
                api_key=KEY, events=history, page_delay=self.s.page_delay, seed=self.s.seed
            )
            self.emu = stack.enter_context(emu)
            self.rx = stack.enter_context(ChaosReceivers(self.work, syslog=self.s.syslog))
            self.fs = stack.enter_context(FsFaults(self.rx.file, self.work / "state" / "default"))
            self.report.notes += [
                f"disk full: {self.fs.disk_mode}",
                f"read-only state: {self.fs.ro_mode or 'impossible here'}",
            ]
            planner = Planner(self.rng, self.s.rounds, self.rx.sinks)
            carry: set[str] = set()
            for index in range(self.s.rounds):
                plan = planner.plan(index, carry)
                self._round(f"round-{index:03d}", plan)
                carry = {slot for slot in plan.forced if self._this_round[slot] == 0}
            self._final()
        self.report.seconds = time.monotonic() - began
        return self.report

    # -- one round -------------------------------------------------------------------------
    def _round(self, name: str, plan: RoundPlan) -> None:
        served = Counter(self.emu.stats.faults_served)
        self._this_round = Counter()
        actions = self._prepare(plan)
        horizon = min(self._lengths[-5:])  # the short runs: most instants fall inside a run
        began = time.monotonic()
        proc = self._start(name)
        try:
            timed = sorted(((at * horizon, k, a) for at, k, a in actions), key=lambda a: a[0])
            self._perform(proc, timed)
            if plan.late_events and "late" not in self._this_round:
                self._late(plan.late_events)()  # the run ended first: late for the next one
            self._settle(proc)
        finally:
            if proc.poll() is None:  # the harness itself failed: leave no shipper behind
                proc.kill()
                proc.wait(timeout=30)
        if proc.returncode != -signal.SIGKILL:
            self._lengths.append(max(time.monotonic() - began, 1.0))
        self._clear(plan, served, name)

    def _prepare(self, plan: RoundPlan) -> list[Action]:
        now = int(time.time())
        self.emu.add_events(
            generate_events(plan.new_events, start=now - 30, end=now, seed=self.rng.getrandbits(48))
        )
        for fault in plan.api:
            self.emu.inject(fault)
        for sink in plan.down:
            self.rx.down(sink)
            self._hit(f"down:{sink}")
        for (kind, sink), times in plan.scripted.items():
            self.rx.arm(sink, kind, times)
        if plan.ack_lost:
            self.rx.lose_hec_acks(plan.ack_lost)
        if plan.disk_free is not None and self.fs.fill_disk(plan.disk_free):
            self._hit("disk_full:file", 0)
        self.rx.set_hec_ack(plan.hec_ack)
        self._write_config(hec_ack=plan.hec_ack)
        actions: list[Action] = [
            (at, f"restart:{sink}", partial(self.rx.restart, sink))
            for sink, at in plan.restart_at.items()
        ]
        if plan.kill_at is not None:
            actions.append((plan.kill_at, "kill", lambda: True))  # `_perform` kills
        if plan.late_events:
            actions.append((plan.late_at, "late", self._late(plan.late_events)))
        if plan.syslog_reset_at is not None:
            actions.append((plan.syslog_reset_at, "reset:syslog", self.rx.reset_syslog))
        if plan.ro_state_at is not None:
            actions.append((plan.ro_state_at, "ro_state", self.fs.state_read_only))
        return actions

    def _late(self, count: int) -> Callable[[], bool]:
        def add() -> bool:
            self.emu.add_late_events(count, max_age=LATE_MAX_AGE)
            self._hit("late", count)
            return False  # counted here, with its size

        return add

    def _perform(self, proc: subprocess.Popen[bytes], actions: list[Action]) -> None:
        began = time.monotonic()
        for at, key, action in actions:
            try:
                proc.wait(timeout=max(0.0, began + at - time.monotonic()))
                return  # the run ended before this instant: the rest is not injected
            except subprocess.TimeoutExpired:
                pass
            if key == "kill":
                proc.send_signal(signal.SIGKILL)
                self._hit("kill")
                return
            if action():
                self._hit(key, 0 if key == "ro_state" else 1)  # its hits: errors in the log

    def _settle(self, proc: subprocess.Popen[bytes]) -> None:
        try:
            proc.wait(timeout=self.s.round_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            self.report.hung += 1
        self.report.exit_codes[proc.returncode] += 1

    def _clear(self, plan: RoundPlan, served: Counter[str], name: str) -> None:
        self.emu.clear_faults()
        for kind, count in (Counter(self.emu.stats.faults_served) - served).items():
            self._hit(f"api:{kind}", count)
        for key, count in self.rx.disarm().items():
            self._hit(key, count)
        for sink in self.rx.sinks:
            self.rx.up(sink)
        self.fs.disk_ok()
        self.fs.state_ok()
        log = (self.logs / f"{name}.log").read_text(errors="replace")
        if "disk_full:file" in self._this_round and self.fs.disk_error in log:
            self._confirm("disk_full:file")
        if "ro_state" in self._this_round and self.fs.ro_error in log:
            self._confirm("ro_state")

    def _confirm(self, key: str) -> None:
        """The run logged the error this fault causes: it really bit."""
        self.report.fault_hits[key] += 1
        self._this_round[key] += 1

    # -- processes and the end -------------------------------------------------------------
    def _write_config(self, *, hec_ack: bool) -> None:
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.now - self.s.span - 3600))
        source = (
            f'[source]\nbase_url = "{self.emu.base_url}"\napi_key_env = "{KEY_ENV}"\n'
            f'start_at = "{start}"\nlookback = "{LOOKBACK}s"\npage_size = 50\nconcurrency = 4\n'
            'window_max_events = 100\nrequest_timeout = "1s"\nretry_max_attempts = 6\n'
            'retry_max_time = "8s"\n\n'
        )
        state = (
            f'[state]\ndir = "{self.work / "state"}"\n\n[log]\nformat = "json"\nlevel = "debug"\n\n'
        )
        self.config.write_text(source + state + self.rx.sinks_toml(hec_ack=hec_ack))

    def _start(self, name: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(exist_ok=True)
        command = [sys.executable, *RUN_ONCE, str(self.config)]
        with (self.logs / f"{name}.log").open("wb") as log:
            env = {**os.environ, **ENV, KEY_ENV: KEY}
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=ROOT
            )

    def _final(self) -> None:
        self.rx.set_hec_ack(True)
        self._write_config(hec_ack=True)
        # A run reads up to `clock_safety_lag` before now (less the Date header's second): the
        # final run starts once every event is older than that, so it must deliver them all.
        newest = max((int(e["effective_at"]) for e in self.emu.events()), default=0)
        time.sleep(max(0.0, newest + CLOCK_SAFETY_LAG + 2 - time.time()))
        proc = self._start("final")
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        self.report.final_exit = proc.returncode
        truth = [str(e["id"]) for e in self.emu.events()]
        self.report.events = len(truth)
        for sink in self.rx.sinks:
            dead = dead_letters(self.work / "state" / "dead-letter" / f"{sink}.jsonl")
            self.report.sinks[sink] = SinkResult.compare(truth, self.rx.received(sink), dead)


def run_chaos(settings: Settings, work: Path | None = None) -> Report:
    """Every round and the final check in `work` (default: a temporary directory, removed)."""
    if work is not None:
        return Chaos(settings, work).run()
    with tempfile.TemporaryDirectory(prefix="shipper-chaos-") as tmp:
        return Chaos(settings, Path(tmp)).run()


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the table; 0 only if nothing was lost."""
    parser = argparse.ArgumentParser(description="shipper fault-injection harness")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=3000, help="initial history (one day)")
    parser.add_argument("--workdir", type=Path, help="keep logs and state here")
    args = parser.parse_args(argv)
    syslog = rsyslog_available()
    settings = Settings(rounds=args.rounds, seed=args.seed, events=args.events, syslog=syslog)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    report = run_chaos(settings, args.workdir)
    if not syslog:
        report.notes.append("rsyslogd is not installed: the syslog sink was left out")
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
