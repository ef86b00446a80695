"""Scenario 5: the shipper at rest, caught up and polling an API with nothing new.

What a sidecar costs most of its life. `shipper run` in follow mode (a raw file sink, the
metrics/health listener on), one per poll interval, each with an emulator of its own, side by
side: each catches up on its events, then all are watched for the same time. Their CPU time
(user + system, every thread) and resident memory come from /proc (Linux), their cycles from
the emulator's request count (a cycle over a quiet span makes one request per pass). Against
them, the cron way: `shipper run --once` from the same caught-up state, a fresh process per
poll, measured by `wait4`.

    .venv/bin/python bench/perf.py --scenarios 5
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.perf import DAY, Variant, lines, shipper_config
from bench.perf_procs import ENV, PYTHON, ROOT, Measured, emulator, list_answers, measure

PASSES = 2  # the ordinary and the tenant_only listing
CRON_EVERY = 60.0  # seconds between `run --once` runs in the cron row


@dataclass(frozen=True, slots=True)
class Idle:
    mode: str
    seconds: float  # how long it was watched
    cycles: float
    cpu: float  # seconds of CPU meanwhile (follow mode: clock ticks, 10 ms steps)
    rss_mib: float  # follow mode: at the end; cron: the peak of one run

    @property
    def cpu_s_per_hour(self) -> float:
        return self.cpu / self.seconds * 3600

    @property
    def cpu_ms_per_cycle(self) -> float:
        return self.cpu / self.cycles * 1000 if self.cycles else float("nan")


@dataclass(slots=True)
class _Follower:
    """One `shipper run` in follow mode against its own emulator."""

    poll_interval: float
    url: str
    config: Path
    out: Path
    proc: subprocess.Popen[bytes]
    requests: int = 0
    cpu: float = 0.0

    def mark(self) -> None:
        self.requests, self.cpu = list_answers(self.url)[0], _cpu_seconds(self.proc.pid)

    def since_mark(self, seconds: float) -> Idle:
        if self.proc.poll() is not None:
            raise RuntimeError(f"follow mode exited ({self.proc.returncode}) while idle")
        return Idle(
            f"follow, poll_interval {self.poll_interval:g} s",
            seconds,
            (list_answers(self.url)[0] - self.requests) / PASSES,
            _cpu_seconds(self.proc.pid) - self.cpu,
            _rss_mib(self.proc.pid),
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def _lines(path: Path) -> int:
    return lines(path) if path.exists() else 0


@contextlib.contextmanager
def _follower(tmp: Path, poll_interval: float, events: int) -> Iterator[_Follower]:
    workdir = Path(tempfile.mkdtemp(dir=tmp, prefix="idle-"))
    out = workdir / "out.jsonl"  # where shipper_config points the sink
    with emulator(workdir, events=events, days=1) as url:
        follow = Variant("follow mode", f'poll_interval = "{poll_interval:g}s"\n')
        metrics = '[metrics]\nlisten = "127.0.0.1:0"\n'
        config = shipper_config(workdir, url, int(time.time()) - 2 * DAY, follow, metrics)
        argv = [PYTHON, "-m", "shipper.cli.main", "run", "--config", str(config)]
        proc = subprocess.Popen(argv, cwd=ROOT, env=ENV, stderr=subprocess.DEVNULL)
        follower = _Follower(poll_interval, url, config, out, proc)
        try:
            yield follower
        finally:
            follower.stop()


def measure_idle(
    tmp: Path,
    poll_intervals: tuple[float, ...],
    *,
    seconds: float,
    cron_runs: int = 3,
    events: int = 1_000,
) -> list[Idle]:
    """A row per poll interval (follow mode watched for `seconds`), then the cron row (the
    median of `cron_runs` runs of `run --once` from the first follower's caught-up state, one
    every `CRON_EVERY` seconds). `RuntimeError` if a follower does not catch up within a minute,
    exits, or a run fails."""
    if not Path("/proc/self/stat").exists():
        raise RuntimeError("scenario 5 reads /proc: Linux only")
    with contextlib.ExitStack() as stack:
        followers = [stack.enter_context(_follower(tmp, p, events)) for p in poll_intervals]
        deadline = time.monotonic() + 60
        for follower in followers:
            while _lines(follower.out) < events:
                if follower.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"follow mode wrote {_lines(follower.out)} of {events} events"
                    )
                time.sleep(0.1)
        # The catching-up cycles commit and log after their last write; a tail of theirs in
        # the watched time could only overstate what rest costs.
        time.sleep(1.0)
        for follower in followers:
            follower.mark()
        began = time.monotonic()
        time.sleep(seconds)  # the measurement itself: nothing to wait for but time
        watched = time.monotonic() - began
        rows = [follower.since_mark(watched) for follower in followers]
        first = followers[0]
        first.stop()  # its state lock is free for the cron runs
        argv = [PYTHON, "-m", "shipper.cli.main", "run", "--once", "--config", str(first.config)]
        runs = [measure(argv) for _ in range(cron_runs)]
        if _lines(first.out) != events:
            raise RuntimeError(f"the cron runs wrote {_lines(first.out) - events} events again")
    return [*rows, _cron_row(runs)]


def _cron_row(runs: list[Measured]) -> Idle:
    cpu = statistics.median(m.cpu for m in runs)
    rss = statistics.median(m.rss_mib for m in runs)
    return Idle(f"cron, `run --once` every {CRON_EVERY:g} s", CRON_EVERY, 1, cpu, rss)


def table(rows: list[Idle]) -> str:
    return "\n".join(
        [
            "**5. at rest: caught up, nothing new (follow mode with its metrics listener; cron)**\n",
            "| mode | watched s | cycles | CPU s | CPU ms per cycle | CPU s per hour | RSS MiB |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r.mode} | {r.seconds:.0f} | {r.cycles:.0f} | {r.cpu:.2f} "
                f"| {r.cpu_ms_per_cycle:.1f} | {r.cpu_s_per_hour:.1f} | {r.rss_mib:.0f} |"
                for r in rows
            ),
        ]
    )


def run_idle(*, quick: bool = False) -> tuple[str, list[str]]:
    """The table and the closing note's lines for scenario 5."""
    # The short interval gives many cycles, so a cycle's cost despite CPU counted in clock
    # ticks; the default one shows the hour as a sidecar spends it.
    intervals, seconds = ((1.0, 5.0), 10.0) if quick else ((1.0, 60.0), 120.0)
    with tempfile.TemporaryDirectory(prefix="shipper-bench-idle-") as tmp:
        rows = measure_idle(Path(tmp), intervals, seconds=seconds, cron_runs=1 if quick else 3)
    busiest, *_, cron = rows
    notes = [
        f"5. at rest: a follow-mode cycle with nothing new costs {busiest.cpu_ms_per_cycle:.1f} ms "
        f"of CPU, {cron.cpu_ms_per_cycle / busiest.cpu_ms_per_cycle:.0f}x less than a "
        f"`run --once` process ({cron.cpu_ms_per_cycle:.0f} ms); "
        + "; ".join(
            f"{r.mode}: {r.cpu_s_per_hour:.1f} s CPU an hour, {r.rss_mib:.0f} MiB" for r in rows
        )
    ]
    return table(rows), notes
