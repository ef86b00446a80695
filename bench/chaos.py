"""Fault-injection harness: break everything around the real CLI, then prove nothing was lost.

    .venv/bin/python bench/chaos.py --rounds 50 --seed 1

Each round runs `shipper run --once` (a subprocess) against the emulator (behind a relay that
can hold or trickle a request) and all five sinks' receivers while injecting, at random: SIGKILL,
API faults, poison entries, a trickled page, late events, a clock 2 h ahead, receivers down,
busy, resetting, dropping answers, restarting, refusing everything, trickling an answer or
refusing one poisoned event for good, stalled and closing syslog connections, lost HEC acks, a
full disk, a rotated output file, a read-only state directory, and SIGTERM during a 120 s
Retry-After. Random mid-run faults count only if the run was still going at their instant;
dealt ones are timing-proof (see `Planner`). Then every fault is cleared, a final clean run must
exit 0, and each receiver is compared with the emulator's ground truth (poison entries excluded:
they must be in the source's quarantine). Exit status 1 if a sink misses an event,
Elasticsearch holds a duplicate, a run hangs or a new kind's promise broke (`Report.problems`).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `bench/chaos.py` as a script

import orjson

from bench.chaos_compliance import FAULTS, ComplianceChaos
from bench.chaos_compliance import KEY as COMPLIANCE_KEY
from bench.chaos_compliance import KEY_ENV as COMPLIANCE_KEY_ENV
from bench.chaos_faults import (
    SOLO,
    STOP_GRACE,
    FsFaults,
    Planner,
    Report,
    RoundPlan,
    coverage,
    render,
)
from bench.chaos_proxy import Hold, Proxy
from bench.chaos_receivers import (
    ENV,
    TRICKLE,
    ChaosReceivers,
    SinkResult,
    dead_letters,
    rsyslog_available,
)
from shipper.emulator import Emulator, generate_events
from shipper.emulator.compliance.server import ComplianceEmulator
from shipper.emulator.poison import MARKER_FIELD, add_poison, entries_served

ROOT = Path(__file__).resolve().parents[1]
KEY, KEY_ENV = "sk-admin-chaos-0123456789abcdefSECRET", "CHAOS_ADMIN_KEY"
# A short lookback keeps the re-read span (and so each run) short; late events stay within it.
LOOKBACK, LATE_MAX_AGE = 60, 30
CLOCK_SAFETY_LAG = 5  # the shipper's default: a run reads only up to its clock minus this
RUN_ONCE = ("-m", "shipper.cli.main", "run", "--once", "--config")
SHIFTED = str(ROOT / "bench" / "chaos_clock.py")  # runs the CLI with its clock shifted
Action = tuple[float, str, Callable[[], bool]]  # when (s into the run), fault key, do it
MAKEUP_ROUNDS = 4  # at most this many extra rounds for kinds that did not happen in theirs
# Held mid-run slots in the order they are done; the kill last (it ends the run).
_HELD_ORDER = ("late", "restart", "reset", "rotate", "ro_state", "kill")


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
    compliance: bool = True  # a second source: the Compliance Logs Platform emulator
    without: tuple[str, ...] = ()  # fault kinds left out (e.g. those whose fix is not merged)


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
            self.cc: ComplianceChaos | None = None
            if self.s.compliance:
                files = ComplianceEmulator(api_key=COMPLIANCE_KEY, seed=self.s.seed)
                self.cc = ComplianceChaos(
                    stack.enter_context(files), self.s.seed, self.now, self.s.span, LOOKBACK
                )
            self.rx = stack.enter_context(ChaosReceivers(self.work, syslog=self.s.syslog))
            self.fs = stack.enter_context(FsFaults(self.rx.file, self.work / "state" / "default"))
            self.api = Proxy(lambda: self.emu.port)
            self.api.start()
            stack.callback(self.api.stop)
            self.report.notes += [
                f"disk full: {self.fs.disk_mode}",
                f"read-only state: {self.fs.ro_mode or 'impossible here'}",
            ]
            planner = Planner(self.rng, self.s.rounds, self.rx.sinks, self.s.without)
            carry: set[str] = set()
            for index in range(self.s.rounds):
                plan = planner.plan(index, carry)
                self._round(f"round-{index:03d}", plan)
                carry = {slot for slot in plan.forced if self._this_round[slot] == 0}
            self._make_up(planner)
            self._final()
        self.report.seconds = time.monotonic() - began
        return self.report

    def _make_up(self, planner: Planner) -> None:
        """Extra rounds for any slot that has not happened yet: each SOLO kind alone."""
        for index in range(MAKEUP_ROUNDS):
            slots = coverage(self.rx.sinks, self.s.without)
            missing = {slot for slot in slots if not self._happened(slot)}
            if not missing:
                return
            solo = [slot for slot in SOLO if slot in missing]
            forced = {solo[0]} if solo else missing
            plan = planner.plan(self.s.rounds + index, forced)
            self.report.makeup_rounds += 1
            self._round(f"makeup-{index}", plan)

    def _happened(self, slot: str) -> bool:
        return self.report.fault_hits[slot] > 0 or (
            slot.startswith("down:") and self.report.fault_rounds[slot] > 0
        )

    # -- one round -------------------------------------------------------------------------
    def _round(self, name: str, plan: RoundPlan) -> None:
        served = Counter(self.emu.stats.faults_served)
        trickled = self.api.trickled
        self._this_round = Counter()
        actions = self._prepare(plan)
        # A refusing round must end in exit 5 (a sink failed), a stop round in the SIGTERM's:
        # their runs get new files but no fault that could fail the second source first.
        calm = plan.stop or bool(plan.refuse)
        killing = self.cc.prepare(armed=not calm) if self.cc is not None else False
        hold = None if plan.stop else self._arm_hold(plan)  # a stop round waits for no hold
        horizon = min(self._lengths[-5:])  # the short runs: most instants fall inside a run
        began = time.monotonic()
        proc = self._start(name, plan.clock_offset)
        if killing and self.cc is not None:
            self.cc.kill_in_download(proc, self.s.round_timeout)
        if plan.clock_offset:
            self._hit("clock")
        try:
            if plan.stop:
                self._stop(proc)
            elif not self._held(proc, plan, hold):  # not killed at the hold
                timed = sorted(((at * horizon, k, a) for at, k, a in actions), key=lambda a: a[0])
                self._perform(proc, timed)
            if plan.late_events and "late" not in self._this_round:
                self._late(plan.late_events)()  # the run ended first: late for the next one
            self._settle(proc)
        finally:
            self.api.disarm()  # the hold, and a trickle no request took
            if hold is not None:
                hold.release()
            if proc.poll() is None:  # the harness itself failed: leave no shipper behind
                proc.kill()
                proc.wait(timeout=30)
        if proc.returncode not in (-signal.SIGKILL, -signal.SIGTERM):
            self._lengths.append(max(time.monotonic() - began, 1.0))
        if self.api.trickled > trickled:
            self._hit("trickle:api", self.api.trickled - trickled)
        self._clear(plan, served, name)
        if self.cc is not None:
            self.cc.settle()
        refused = any(self._this_round[f"refuse:{sink}"] for sink in plan.refuse)
        if refused and proc.returncode >= 0:
            self.report.refused_exits.append(proc.returncode)
        with (self.logs / "rounds.txt").open("a") as rounds:  # what to blame a loss on
            faults = ", ".join(sorted(k for k, n in self._this_round.items() if n))
            rounds.write(f"{name} {time.time():.0f} exit {proc.returncode}: {faults}\n")

    def _arm_hold(self, plan: RoundPlan) -> Hold | None:
        """Hold the first API request made once this run delivered something (and, for the
        slots that need them, once the file sink wrote and the syslog sink is connected)."""
        if not plan.held:
            return None
        progress, written = self.rx.progress(), _size(self.rx.file)
        file_needed = "rotate:file" in plan.held
        syslog_needed = "reset:syslog" in plan.held

        def ready() -> bool:
            if file_needed and _size(self.rx.file) <= written:
                return False
            if syslog_needed and self.rx.syslog_proxy.live() == 0:
                return False
            return self.rx.progress() > progress

        hold = Hold(ready)
        self.api.hold = hold
        return hold

    def _held(self, proc: subprocess.Popen[bytes], plan: RoundPlan, hold: Hold | None) -> bool:
        """Wait for the hold, do the round's held slots; True if that killed the run."""
        if hold is None:
            return False
        deadline = time.monotonic() + self.s.round_timeout
        while not hold.reached.wait(0.05):
            if proc.poll() is not None or time.monotonic() > deadline:
                return False  # ended without reaching it: the slots are carried
        slots = sorted(plan.held, key=lambda slot: _HELD_ORDER.index(slot.partition(":")[0]))
        for slot in slots:
            if slot == "kill":
                proc.send_signal(signal.SIGKILL)
                self._hit("kill")
                return True
            if self._held_action(slot, plan)():
                self._hit(slot, 0 if slot == "ro_state" else 1)
        hold.release()
        return False

    def _held_action(self, slot: str, plan: RoundPlan) -> Callable[[], bool]:
        kind, _, sink = slot.partition(":")
        if kind == "late":
            return self._late(plan.late_events)
        if kind == "restart":
            return partial(self.rx.restart, sink)
        if kind == "reset":
            return self.rx.reset_syslog
        if kind == "rotate":
            return self.rx.rotate_file
        return self.fs.state_read_only

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Once the webhook answered 503 with Retry-After: 120, SIGTERM; time the exit."""
        deadline = time.monotonic() + self.s.round_timeout
        while self.rx.hits("stop:webhook") == 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                return
            time.sleep(0.05)  # bounded poll of a counter the receiver thread bumps
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        self._hit("stop")
        try:
            proc.wait(timeout=STOP_GRACE + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        self.report.stop_seconds.append(time.monotonic() - began)

    def _prepare(self, plan: RoundPlan) -> list[Action]:
        now = int(time.time())
        fresh = generate_events(
            plan.new_events, start=now - 30, end=now, seed=self.rng.getrandbits(48)
        )
        self.emu.add_events(fresh)
        for sink in sorted(plan.poison_events):
            self.rx.poison(sink, str(self.rng.choice(fresh)["id"]))
        for sink in sorted(plan.refuse):
            self.rx.refuse(sink)
        if plan.stop:
            self.rx.busy_for_long("webhook")
        for poison in plan.poison_entries:
            key = f"audit_log_chaos_poison_{len(self.report.poison_entries):04d}"
            add_poison(self.emu, poison, key, now - self.rng.randint(1, 30))
            self.report.poison_entries[key] = poison
            self._hit(f"poison_entry:{poison}")
        if plan.trickle_api:
            self.api.trickle_next(*TRICKLE)
        if plan.stall_syslog:
            self.rx.stall_syslog()
        if plan.close_syslog:
            self.rx.close_syslog()
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
            if not key.startswith("stop:"):  # the stop's 503s: `_stop` counts the SIGTERM
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
            f'[[sources]]\nbase_url = "http://127.0.0.1:{self.api.port}/v1"\n'
            f'api_key_env = "{KEY_ENV}"\n'
            f'start_at = "{start}"\nlookback = "{LOOKBACK}s"\npage_size = 50\nconcurrency = 4\n'
            'window_max_events = 100\nrequest_timeout = "1s"\nretry_max_attempts = 6\n'
            'retry_max_time = "8s"\n\n'
        )
        state = (
            f'[state]\ndir = "{self.work / "state"}"\n\n[log]\nformat = "json"\nlevel = "debug"\n\n'
        )
        if self.cc is not None:
            source += self.cc.sources_toml(start)
        self.config.write_text(source + state + self.rx.sinks_toml(hec_ack=hec_ack))

    def _start(self, name: str, clock_offset: int = 0) -> subprocess.Popen[bytes]:
        self.logs.mkdir(exist_ok=True)
        command = [sys.executable, *RUN_ONCE, str(self.config)]
        if clock_offset:
            command[1:3] = [SHIFTED, str(clock_offset)]
        with (self.logs / f"{name}.log").open("wb") as log:
            env = {**os.environ, **ENV, KEY_ENV: KEY, COMPLIANCE_KEY_ENV: COMPLIANCE_KEY}
            return subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=ROOT
            )

    def _final(self) -> None:
        self.rx.set_hec_ack(True)
        self._write_config(hec_ack=True)
        if self.cc is not None:
            self.cc.clear()
        # A run reads up to `clock_safety_lag` before now (less the Date header's second): the
        # final run starts once every event is older than that, so it must deliver them all.
        served = [e for e in map(_event, entries_served(self.emu)) if e is not None]
        newest = max((int(e["effective_at"]) for e in served), default=0)
        time.sleep(max(0.0, newest + CLOCK_SAFETY_LAG + 2 - time.time()))
        proc = self._start("final")
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        self.report.final_exit = proc.returncode
        truth = [str(e["id"]) for e in served]
        if self.cc is not None:
            truth += self.cc.truth()
            self.report.notes += self.cc.notes()
            if self.s.rounds >= 2 * len(FAULTS):  # each kind armed twice: it must have fired
                self.report.broken += [
                    f"compliance fault never happened: {kind}" for kind in self.cc.missing_kinds()
                ]
        self.report.events = len(truth)
        poison = {*self.report.poison_entries, "12345"}  # "12345": the bad_id entry's id
        delivered: set[str] = set()
        for sink in self.rx.sinks:
            dead = dead_letters(self.work / "state" / "dead-letter" / f"{sink}.jsonl")
            received = self.rx.received(sink)
            delivered |= poison & set(received.ids)
            poisoned = self.rx.poisoned.get(sink, set())
            self.report.sinks[sink] = SinkResult.compare(truth, received, dead, poisoned)
        self.report.poison_delivered = len(delivered)
        quarantine = self.work / "state" / "default" / "quarantine.jsonl"
        if quarantine.exists():
            found = _strings(quarantine)
            self.report.quarantined = sum(
                any(key in text for text in found) for key in self.report.poison_entries
            )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _event(blob: bytes) -> dict[str, Any] | None:
    """An ordinary entry decoded; None for a poison entry (undecodable or marked)."""
    try:
        event = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    return None if MARKER_FIELD in event else event


def _strings(path: Path) -> list[str]:
    """The quarantine's text, plus every string in it decoded from base64 where that works."""
    text = path.read_text(errors="replace")
    found = [text]
    for line in text.splitlines():
        try:
            values = list(_walk(json.loads(line)))
        except ValueError:
            continue
        for value in values:
            with contextlib.suppress(ValueError):
                found.append(base64.b64decode(value, validate=True).decode(errors="replace"))
    return found


def _walk(obj: object) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _walk(value)


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
    parser.add_argument("--without", default="", help="fault kinds to leave out, e.g. clock,stop")
    args = parser.parse_args(argv)
    syslog = rsyslog_available()
    without = tuple(kind for kind in args.without.split(",") if kind)
    settings = Settings(
        rounds=args.rounds, seed=args.seed, events=args.events, syslog=syslog, without=without
    )
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        if any(args.workdir.iterdir()):
            # An earlier run's cursors and dead letters would be compared with fresh receivers.
            parser.error(f"--workdir {args.workdir} is not empty: give a new or empty folder")
    report = run_chaos(settings, args.workdir)
    if not syslog:
        report.notes.append("rsyslogd is not installed: the syslog sink was left out")
    print(render(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
