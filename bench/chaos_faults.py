"""What goes wrong in each chaos round (from a seeded RNG), the filesystem faults, the report.

Every fault kind is scheduled at least once whatever the number of rounds and however slow the
machine: `Planner` deals the kinds out round-robin before adding random ones. A dealt kind never
depends on timing: it is armed before the run starts and fires on the first request it applies
to, or (mid-run kinds) it is performed while the harness holds an API request, so the run is
known to be alive; a round with dealt kinds has no random kill or read-only state that could end
it first, and the kinds that end a run (kill, read-only state, a stop) get rounds of their own.
A kind that still did not happen is carried to the next round, and past the last round to
make-up rounds.
Filesystem faults are real where the harness runs as root and `mount` works: a small tmpfs that
is filled up under the file sink (ENOSPC), and a bind mount of the state that is remounted
read-only (EROFS). Otherwise they fall back to `/dev/full` and `chmod`, and say so.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos_receivers import SinkResult, sink_rows
from shipper.emulator import Fault
from shipper.emulator.faults import FaultKind
from shipper.emulator.poison import POISON_KINDS, PoisonKind

API_KINDS: tuple[FaultKind, ...] = (
    "429", "500", "502", "503", "504", "408", "409",
    "timeout", "truncated", "concatenated", "html200", "reset",
)  # fmt: skip
HTTP_SINKS = ("webhook", "hec", "elastic")
# Scripted HTTP trouble: 503 "busy"; "reset": the connection closes before the request is
# processed; "dropped_answer": the receiver processes (accepts) it, then the connection drops.
SCRIPTED = ("busy", "reset", "dropped_answer")
# Kinds whose whole point is to end or break the run: each gets a round of its own.
SOLO = ("kill", "ro_state", "stop")
CLOCK_JUMP = 7200  # seconds the shipper's clock runs ahead in a clock-jump round
STOP_GRACE = 20.0  # a SIGTERM during a retry wait must end the process within this
REQUEST_TIMEOUT = 1.0  # the source's request_timeout; the "timeout" fault waits longer
OUT_TMPFS_SIZE = "2g"  # tmpfs pages are only allocated as the file sink writes
TMPFS = f"a {OUT_TMPFS_SIZE} tmpfs filled to within 0-20 kB (ENOSPC)"
BIND_RO = "state bind mount remounted read-only (EROFS)"
CHMOD = "cursor directory chmod 0555 (EACCES)"


@dataclass
class RoundPlan:
    """Everything one round injects; times are fractions of the expected run length."""

    kill_at: float | None = None
    api: list[Fault] = field(default_factory=list)
    new_events: int = 0
    late_events: int = 0
    late_at: float = 0.0
    hec_ack: bool = True
    down: set[str] = field(default_factory=set)
    scripted: dict[tuple[str, str], int] = field(default_factory=dict)  # (kind, sink) -> times
    restart_at: dict[str, float] = field(default_factory=dict)
    syslog_reset_at: float | None = None
    ack_lost: int = 0
    disk_free: int | None = None  # bytes left free on the file sink's disk
    ro_state_at: float | None = None
    forced: set[str] = field(default_factory=set)  # slots this round must try
    held: set[str] = field(default_factory=set)  # mid-run slots done while a request is held
    stop: bool = False  # SIGTERM once the webhook answered 503 with Retry-After: 120
    clock_offset: int = 0
    trickle_api: bool = False
    poison_entries: list[PoisonKind] = field(default_factory=list)
    poison_events: set[str] = field(default_factory=set)  # sinks that poison one event for good
    refuse: set[str] = field(default_factory=set)  # sinks answering 400 to everything
    stall_syslog: bool = False
    close_syslog: bool = False


def coverage(sinks: tuple[str, ...], without: tuple[str, ...] = ()) -> list[str]:
    """Every fault kind the harness knows for these sinks (but the kinds `without`), as slots."""
    return [slot for slot in _slots(sinks) if kind_of(slot) not in without]


def _slots(sinks: tuple[str, ...]) -> list[str]:
    stream = [s for s in sinks if s != "file"]
    http = [s for s in stream if s in HTTP_SINKS]
    slots = [*SOLO, "late", "clock", "trickle:api", *(f"api:{k}" for k in API_KINDS)]
    slots += [f"poison_entry:{kind}" for kind in POISON_KINDS]
    slots += [f"{kind}:{s}" for kind in ("down", "restart") for s in stream]
    slots += [f"{kind}:{s}" for kind in (*SCRIPTED, "refuse", "poison_event") for s in http]
    slots += ["trickle:webhook"] if "webhook" in sinks else []
    slots += ["reset:syslog", "stall:syslog", "close:syslog"] if "syslog" in sinks else []
    slots += ["ack_lost:hec"] if "hec" in sinks else []
    slots += ["disk_full:file", "rotate:file"] if "file" in sinks else []
    return slots


def kind_of(slot: str) -> str:
    """The fault kind of a slot or report key (`busy:hec` -> `busy`)."""
    return slot.partition(":")[0]


class Planner:
    """Deals every slot out over the rounds, then adds random faults to each round.

    The kinds in SOLO get the first rounds, one each; the other slots are dealt after them. A
    sink gets at most one dealt slot per round (while there are rounds enough), so the trouble
    of one sink does not mask another kind of trouble of the same sink. The last round adds
    nothing random: it only retries what earlier rounds could not do.
    """

    def __init__(
        self,
        rng: random.Random,
        rounds: int,
        sinks: tuple[str, ...],
        without: tuple[str, ...] = (),
    ) -> None:
        self.rng, self.sinks, self._last, self._calm = rng, sinks, rounds - 1, False
        self.without = without  # kinds left out entirely (`bench/chaos.py --without`)
        self._forced: list[set[str]] = [set() for _ in range(rounds)]
        slots = coverage(sinks, without)
        rng.shuffle(slots)
        solo = [slot for slot in SOLO if rounds > len(SOLO) and slot in slots]
        for index, slot in enumerate(solo):
            self._forced[index].add(slot)
        first, rest = len(solo), rounds - len(solo)
        common = [slot for slot in slots if _sink_of(slot) not in sinks and slot not in solo]
        for index, slot in enumerate(common):
            self._forced[first + index % rest].add(slot)
        for sink in sinks:
            for index, slot in enumerate(s for s in slots if _sink_of(s) == sink):
                self._forced[first + index % rest].add(slot)

    def dealt(self) -> list[set[str]]:
        """The slots dealt to each planned round (copies)."""
        return [set(slots) for slots in self._forced]

    def _at(self) -> float:
        return self.rng.uniform(0.2, 1.0)

    def _wants(self, forced: set[str], slot: str, probability: float) -> bool:
        if kind_of(slot) in self.without:
            return False
        return slot in forced or (not self._calm and self.rng.random() < probability)

    def plan(self, index: int, carry: set[str]) -> RoundPlan:
        """Round `index`; `carry` holds slots an earlier round tried but that did not happen."""
        rng, forced = self.rng, self._forced[index] | carry if index <= self._last else carry
        self._calm = index >= self._last and index > 0
        plan = RoundPlan(new_events=rng.randint(100, 400), forced=forced)
        ending = 0.0 if forced else 1.0  # a dealt kind must not lose its run to a random end
        if self._wants(forced, "kill", 0.6 * ending):
            self._mid_run(plan, "kill")
        if self._wants(forced, "late", 0.7):
            plan.late_events = rng.randint(5, 40)
            self._mid_run(plan, "late")
        if self._wants(forced, "ro_state", 0.1 * ending):
            self._mid_run(plan, "ro_state")
        plan.stop = "stop" in forced
        plan.clock_offset = CLOCK_JUMP if self._wants(forced, "clock", 0.02) else 0
        plan.trickle_api = self._wants(forced, "trickle:api", 0.03)
        plan.poison_entries = [
            kind for kind in POISON_KINDS if self._wants(forced, f"poison_entry:{kind}", 0.02)
        ]
        kinds = API_KINDS if "api" not in self.without else ()
        faults = (self._api(kind, f"api:{kind}" in forced) for kind in kinds)
        plan.api = [fault for fault in faults if fault is not None]
        for sink in (s for s in self.sinks if s != "file"):
            mine = {slot for slot in forced if _sink_of(slot) == sink}
            if sink == "webhook" and plan.stop:
                continue  # the stop needs the webhook answering its 503s, nothing else
            self._receiver(plan, sink, mine)
        mine = {"disk_full:file", "rotate:file"} & forced  # a full disk stops the rotation
        odds = 0.0 if mine else 1.0
        if self._wants(mine, "disk_full:file", 0.1 * odds) and "file" in self.sinks:
            plan.disk_free = rng.randint(0, 20_000)
        rotate = self._wants(mine, "rotate:file", 0.15 * odds) and plan.disk_free is None
        if rotate and "file" in self.sinks:
            plan.held.add("rotate:file")  # always at the hold: the file sink is between writes
        if plan.held:
            plan.new_events = max(plan.new_events, 400)  # windows enough to hold one mid-run
        return plan

    def _mid_run(self, plan: RoundPlan, slot: str) -> None:
        """A dealt mid-run slot is done at the hold; a random one at a random instant."""
        if slot in plan.forced:
            plan.held.add(slot)
        elif slot == "kill":
            plan.kill_at = self._at()
        elif slot == "late":
            plan.late_at = self._at()
        elif slot == "ro_state":
            plan.ro_state_at = self.rng.uniform(0.0, 1.0)
        elif slot == "reset:syslog":
            plan.syslog_reset_at = self._at()
        else:
            plan.restart_at[_sink_of(slot)] = self._at()

    def _api(self, kind: FaultKind, forced: bool) -> Fault | None:
        if not forced and (self._calm or self.rng.random() >= 0.08):
            return None
        retry_after = "1" if kind in ("429", "503") else None
        delay = REQUEST_TIMEOUT * 1.5 if kind == "timeout" else 0.0
        if forced:  # a counted fault fires on the next request for sure
            return Fault(kind, retry_after=retry_after, delay=delay)
        probability = self.rng.uniform(0.01, 0.03)
        return Fault(kind, probability=probability, retry_after=retry_after, delay=delay)

    def _receiver(self, plan: RoundPlan, sink: str, mine: set[str]) -> None:
        """One sink's trouble: its slot(s) this round, or (with none) maybe a random one."""
        odds = 0.0 if mine - {f"down:{sink}"} else 1.0  # a pending slot goes before an outage
        if self._wants(mine, f"down:{sink}", 0.08 * odds) and mine <= {f"down:{sink}"}:
            plan.down.add(sink)
            return
        odds = 0.0 if mine else 1.0
        if self._wants(mine, f"restart:{sink}", 0.12 * odds):
            self._mid_run(plan, f"restart:{sink}")
        if sink == "syslog":
            if self._wants(mine, "reset:syslog", 0.15 * odds):
                self._mid_run(plan, "reset:syslog")
            plan.stall_syslog = self._wants(mine, "stall:syslog", 0.06 * odds)
            plan.close_syslog = self._wants(mine, "close:syslog", 0.06 * odds)
        if sink in HTTP_SINKS:
            # One kind per round: together they would outlast the sink's retries.
            scripted = (*SCRIPTED, "trickle") if sink == "webhook" else SCRIPTED
            kinds = [k for k in scripted if self._wants(mine, f"{k}:{sink}", 0.12 * odds)]
            if kinds:
                kind = self.rng.choice(kinds)
                times = 1 if kind == "trickle" else self.rng.randint(1, 3 if kind == "busy" else 2)
                plan.scripted[kind, sink] = times
            if self._wants(mine, f"refuse:{sink}", 0.03 * odds):
                plan.refuse.add(sink)
            if self._wants(mine, f"poison_event:{sink}", 0.03 * odds):
                plan.poison_events.add(sink)
        if sink == "hec":
            lost = self._wants(mine, "ack_lost:hec", 0.15 * odds)
            plan.ack_lost = self.rng.randint(1, 2) if lost else 0
            plan.hec_ack = lost or self.rng.random() < 0.7


def _sink_of(slot: str) -> str:
    return slot.partition(":")[2]


def _run(*args: str) -> bool:
    try:
        return subprocess.run(args, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class FsFaults:
    """A disk that fills up under the file sink and a state directory that turns read-only."""

    def __init__(self, out_file: Path, state_source_dir: Path, *, mount: bool = True) -> None:
        self.out_file = out_file
        self._mount = mount and os.geteuid() == 0
        self.state = state_source_dir  # <state.dir>/<source>: the cursors live below it
        # Without mounts: writes to /dev/full fail with ENOSPC, then the file sink's rollback
        # (ftruncate) fails with EINVAL on the character device, and that is what it reports.
        self.disk_mode, self.disk_error = "/dev/full symlink", "Invalid argument"
        self.ro_mode: str | None = CHMOD if os.geteuid() != 0 else None
        self.ro_error = "Permission denied"
        self._mounts: list[Path] = []
        self._filler = out_file.parent / "filler"

    def __enter__(self) -> FsFaults:
        out = self.out_file.parent
        out.mkdir(parents=True, exist_ok=True)
        (self.state / "cursors").mkdir(parents=True, exist_ok=True)
        tmpfs = ("mount", "-t", "tmpfs", "-o", f"size={OUT_TMPFS_SIZE}", "tmpfs", str(out))
        if self._mount and _run(*tmpfs):
            self._mounts.append(out)
            self.disk_mode, self.disk_error = TMPFS, "No space left"
        if self._mount and _run("mount", "--bind", str(self.state), str(self.state)):
            self._mounts.append(self.state)
            self.ro_mode, self.ro_error = BIND_RO, "Read-only file system"
        return self

    def __exit__(self, *exc: object) -> None:
        self.disk_ok()
        self.state_ok()
        for mount in reversed(self._mounts):
            _run("umount", "-l", str(mount))
        self._mounts.clear()

    def fill_disk(self, leave: int) -> bool:
        """Leave only `leave` bytes free for the file sink; True if the disk is now (nearly) full."""
        if self.disk_mode == TMPFS:
            stat = os.statvfs(self.out_file.parent)
            size = stat.f_bavail * stat.f_frsize - leave
            fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.posix_fallocate(fd, 0, max(size, 1))
            except OSError:
                pass  # ENOSPC while filling is as full as it gets
            finally:
                os.close(fd)
            return True
        if self.out_file.exists():
            self.out_file.rename(self.out_file.with_suffix(".real"))
        self.out_file.symlink_to("/dev/full")  # every write: ENOSPC
        return True

    def disk_ok(self) -> None:
        self._filler.unlink(missing_ok=True)
        if self.out_file.is_symlink():
            self.out_file.unlink()
            real = self.out_file.with_suffix(".real")
            if real.exists():
                real.rename(self.out_file)

    def state_read_only(self) -> bool:
        """Make the cursors unwritable; False when this environment cannot."""
        if self.ro_mode == CHMOD:
            (self.state / "cursors").chmod(0o555)
            return True
        if self.ro_mode is None:
            return False
        for _ in range(200):  # EBUSY while the shipper has a cursor's temp file open
            if _run("mount", "-o", "remount,bind,ro", str(self.state)):
                return True
            time.sleep(0.005)
        return False

    def state_ok(self) -> None:
        if self.ro_mode == CHMOD:
            with contextlib.suppress(OSError):
                (self.state / "cursors").chmod(0o755)
        elif self.ro_mode is not None:
            _run("mount", "-o", "remount,bind,rw", str(self.state))


_UNITS = {
    "kill": "kills",
    "late": "events",
    "ack_lost": "events vanished (resent after ack_timeout)",
    "stall": "connections accepted, never read",
    "close": "connections closed by the peer between batches",
    "clock": "runs with the clock 2 h ahead",
    "rotate": "renames + compressions of the output",
    "poison_entry": "entries served (to quarantine)",
    "poison_event": "500 replies (the event to dead-letter)",
    "refuse": "400 replies (the run must exit 5)",
    "trickle": "answers trickled a byte per 0.5 s",
    "stop": f"SIGTERMs during a Retry-After: 120 (exit within {STOP_GRACE:.0f} s)",
    "restart": "restarts mid-run",
    "reset": "connections reset (ss -K)",  # syslog's; the HTTP sinks' count replies
}


def _effect(key: str, hits: int) -> str:
    kind, _, sink = key.partition(":")
    if kind == "api" or (kind in SCRIPTED and sink in HTTP_SINKS):
        return f"{hits} replies"
    if kind in ("disk_full", "ro_state"):
        return f"its error logged in {hits} runs"
    return f"{hits} {_UNITS[kind]}" if kind in _UNITS else "-"


def _fault_rows(rounds: Counter[str], hits: Counter[str]) -> list[str]:
    """The table of faults that really happened: in how many rounds, with what effect."""
    rows = [f"{'fault injected':<26}{'rounds':>7}  effect"]
    rows += [f"{key:<26}{rounds[key]:>7}  {_effect(key, hits[key])}" for key in sorted(rounds)]
    return rows


@dataclass
class Report:
    """What was injected and what each sink holds in the end."""

    rounds: int
    seed: int
    fault_rounds: Counter[str] = field(default_factory=Counter)  # rounds it really happened in
    fault_hits: Counter[str] = field(default_factory=Counter)  # kills, replies, events, ...
    exit_codes: Counter[int] = field(default_factory=Counter)
    sinks: dict[str, SinkResult] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    events: int = 0
    final_exit: int | None = None
    hung: int = 0
    seconds: float = 0.0
    makeup_rounds: int = 0
    refused_exits: list[int] = field(default_factory=list)  # rounds with a refusing receiver
    stop_seconds: list[float] = field(default_factory=list)  # SIGTERM to exit, per stop
    poison_entries: dict[str, str] = field(default_factory=dict)  # marker -> kind
    quarantined: int | None = None  # poison markers found in quarantine.jsonl (None: no file)
    poison_delivered: int = 0  # poison entries some sink received anyway
    broken: list[str] = field(default_factory=list)  # other promises broken, one line each

    def hit(self, key: str, count: int = 1) -> None:
        self.fault_rounds[key] += 1
        self.fault_hits[key] += count

    @property
    def ok(self) -> bool:
        lost = any(r.missing or r.unreadable for r in self.sinks.values())
        es_copies = self.sinks["elastic"].duplicates if "elastic" in self.sinks else 0
        fine = self.final_exit == 0 and not lost and es_copies == 0 and not self.hung
        return fine and not self.problems

    @property
    def problems(self) -> list[str]:
        """Promises of the new fault kinds that this run broke, one line each."""
        found = []
        if wrong := [code for code in self.refused_exits if code != 5]:
            found.append(f"a refusing receiver's run exited {wrong}, not 5")
        if slow := [s for s in self.stop_seconds if s > STOP_GRACE]:
            found.append(f"SIGTERM during a retry wait took {max(slow):.0f} s to exit")
        if self.quarantined is not None and self.quarantined < len(self.poison_entries):
            found.append(
                f"poison entries quarantined: {self.quarantined}/{len(self.poison_entries)}"
            )
        if self.poison_delivered:
            found.append(f"poison entries delivered: {self.poison_delivered}")
        return found + self.broken


_EXITS = {-9: "killed", 0: "ok (0)", 4: "API gave up (4)", 5: "a sink failed (5)"}


def _new_kind_lines(report: Report) -> list[str]:
    stops = ", ".join(f"{s:.1f}" for s in report.stop_seconds) or "-"
    quarantine = "no quarantine.jsonl" if report.quarantined is None else report.quarantined
    lines = [
        f"make-up rounds: {report.makeup_rounds}   refusing rounds' exits: "
        f"{report.refused_exits or '-'}   SIGTERM to exit (s): {stops}",
        f"poison entries served: {len(report.poison_entries)}, quarantined: {quarantine}, "
        f"delivered: {report.poison_delivered}",
    ]
    return lines + [f"PROBLEM: {problem}" for problem in report.problems]


def render(report: Report) -> str:
    """The table printed at the end of a chaos run."""
    codes = ", ".join(
        f"{_EXITS.get(c, f'exit {c}')}: {n}" for c, n in sorted(report.exit_codes.items())
    )
    lines = [
        f"chaos: {report.rounds} rounds, seed {report.seed}, sinks: {', '.join(report.sinks)}",
        f"kills (SIGKILL mid-run): {report.fault_hits['kill']}",
        f"round runs: {codes}",
        f"hung runs: {report.hung}   final clean run exit: {report.final_exit}",
        f"events (ground truth): {report.events}   notes: {'; '.join(report.notes)}",
        *_new_kind_lines(report),
        "",
        *_fault_rows(report.fault_rounds, report.fault_hits),
        "",
        *sink_rows(report.sinks),
    ]
    verdict = "OK: no sink lost an event" if report.ok else "FAILED: see above"
    return "\n".join([*lines, "", f"wall time: {report.seconds:.1f} s   {verdict}"])
