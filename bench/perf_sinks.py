"""Scenario 4: events per second into each sink, batched and gzip'd against one request per event.

The HTTP sinks (Splunk HEC, Elasticsearch `_bulk`, webhook) send to bench/perf_receiver.py in
its own process; the syslog sink sends RFC 5424 over TCP to a real rsyslogd (tests/sinks/
rsyslog.py), skipped when rsyslogd is not installed. Each sink gets the same pre-built events
(held as the pipeline holds them: JSON bytes) and its default format; the time is that of
`send()` + `flush()`, the number of events the receiver counted must match.

    .venv/bin/python bench/perf.py --scenarios 4
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import urlopen

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.perf_procs import ENV, PYTHON, ROOT, machine
from shipper.emulator import generate_events
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import Sink, SinkContext

TOKEN_ENV = "SHIPPER_BENCH_HEC_TOKEN"
BATCHED = {"compression": "gzip"}  # and the default batch_max_events (500)
ONE_BY_ONE = {"batch_max_events": 1, "compression": "none"}


@dataclass(frozen=True, slots=True)
class Result:
    sink: str
    mode: str
    events: int
    seconds: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def events(count: int) -> list[AuditEvent]:
    raw = generate_events(count, start=1_750_000_000, end=1_750_000_000 + 86_400, seed=3)
    return [AuditEvent.from_api(obj, "acme", compact=True) for obj in raw]


@contextlib.contextmanager
def receiver(workdir: Path) -> Iterator[str]:
    """bench/perf_receiver.py in its own process; yields its base URL."""
    port_file = workdir / "receiver.port"
    argv = [PYTHON, str(ROOT / "bench" / "perf_receiver.py"), "--port-file", str(port_file)]
    proc = subprocess.Popen(argv, env=ENV)
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark receiver did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def counted(url: str) -> int:
    with urlopen(f"{url}/_count", timeout=10) as answer:  # loopback, our own receiver
        return int(__import__("json").loads(answer.read())["events"])


def http_sinks(url: str) -> dict[str, Callable[[dict[str, Any]], Sink]]:
    from sinks.elasticsearch.sink import plugin as elasticsearch
    from sinks.splunk_hec.sink import plugin as splunk_hec
    from sinks.webhook.sink import plugin as webhook

    def make(plugin: Any, **fixed: Any) -> Callable[[dict[str, Any]], Sink]:
        def create(extra: dict[str, Any]) -> Sink:
            settings = plugin.settings_model.model_validate({**fixed, **extra})
            sink: Sink = plugin.create(settings, SinkContext(state_dir=Path(tempfile.gettempdir())))
            return sink

        return create

    return {
        "splunk_hec (raw)": make(
            splunk_hec,
            type="splunk_hec",
            name="hec",
            url=url,
            token_env=TOKEN_ENV,
            indexer_ack=False,  # the receiver has no acknowledgement: this measures sending
        ),
        "elasticsearch _bulk (ecs)": make(elasticsearch, type="elasticsearch", name="es", url=url),
        "webhook (raw ndjson)": make(webhook, type="webhook", name="hook", url=f"{url}/webhook"),
    }


def timed(sink: Sink, batch: list[AuditEvent]) -> tuple[float, float]:
    sink.open()
    try:
        began, cpu = time.perf_counter(), time.process_time()
        rejected = sink.send(batch)
        sink.flush()
        elapsed, used = time.perf_counter() - began, time.process_time() - cpu
    finally:
        sink.close()
    if rejected:
        raise RuntimeError(f"{len(rejected)} events rejected: {rejected[0].reason}")
    return elapsed, used


def _median(name: str, mode: str, count: int, runs: list[tuple[float, float]]) -> Result:
    seconds, cpu = sorted(runs)[len(runs) // 2]
    return Result(name, mode, count, seconds, cpu)


def run_http(batched: list[AuditEvent], single: list[AuditEvent], rounds: int = 1) -> list[Result]:
    """Each HTTP sink, both modes, `rounds` times each (the median is kept)."""
    os.environ[TOKEN_ENV] = "bench-token-0123"
    results = []
    with tempfile.TemporaryDirectory() as tmp, receiver(Path(tmp)) as url:
        for name, create in http_sinks(url).items():
            for mode, extra, batch in (
                ("batched + gzip", BATCHED, batched),
                ("one per request", ONE_BY_ONE, single),
            ):
                runs = []
                for _ in range(rounds):
                    before = counted(url)
                    runs.append(timed(create(extra), batch))
                    if (got := counted(url) - before) != len(batch):
                        raise RuntimeError(f"{name}: the receiver counted {got} of {len(batch)}")
                results.append(_median(name, mode, len(batch), runs))
    return results


def run_syslog(
    batched: list[AuditEvent], single: list[AuditEvent], rounds: int = 1
) -> list[Result]:
    """The syslog sink over TCP into rsyslogd, both modes, `rounds` times each (median kept)."""
    from shipper.testing.receivers.rsyslog import Rsyslog
    from sinks.syslog.sink import SyslogSink, SyslogSinkSettings

    results = []
    with tempfile.TemporaryDirectory() as tmp, Rsyslog(Path(tmp), max_message_size=64 * 1024) as rx:
        written = 0
        for mode, extra, batch in (
            ("batched", {}, batched),
            ("one per write", {"batch_max_events": 1}, single),
        ):
            settings = SyslogSinkSettings(
                type="syslog", name="syslog", host="127.0.0.1", port=rx.tcp_port, **extra
            )
            runs = []
            for _ in range(rounds):
                runs.append(timed(SyslogSink(settings), batch))
                written += len(batch)
                _await_lines(rx.output, written)  # rsyslog wrote every message before the next
            results.append(_median("syslog rfc5424 TCP (normalized)", mode, len(batch), runs))
    return results


def _await_lines(path: Path, count: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or path.read_bytes().count(b"\n") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"rsyslog wrote fewer than {count} messages within {timeout}s")
        time.sleep(0.05)


def table(results: list[Result]) -> str:
    head = (
        "**4. throughput into each sink (local receiver; medians)**\n\n"
        "| sink | mode | events | events/s | CPU µs/event |\n|---|---|---:|---:|---:|"
    )
    rows = [
        f"| {r.sink} | {r.mode} | {r.events:,} | {r.rate:,.0f} | {r.cpu / r.events * 1e6:.1f} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def run_sinks(*, quick: bool) -> list[str]:
    """Print scenario 4's table; return its lines for the closing note."""
    batched, single = (events(500), events(100)) if quick else (events(20_000), events(2_000))
    rounds = 1 if quick else 3
    results = run_http(batched, single, rounds)
    try:
        results += run_syslog(batched if quick else events(50_000), single, rounds)
    except Exception as exc:  # pytest's Skipped (rsyslogd missing) is not an Exception subclass
        print(f"syslog: not measured ({exc})")
    except BaseException as exc:
        if type(exc).__name__ != "Skipped":
            raise
        print(f"syslog: not measured ({exc})")
    print(table(results) + "\n", flush=True)
    notes = []
    for name in dict.fromkeys(r.sink for r in results):
        fast, slow = [r for r in results if r.sink == name]
        notes.append(
            f"4. {name}: {fast.rate:,.0f} events/s {fast.mode}, "
            f"{fast.rate / slow.rate:.0f}x one event per request ({slow.rate:,.0f}/s)"
        )
    return notes


if __name__ == "__main__":
    from shipper.runtime import logs

    logs.configure("warning", "json")
    for note in run_sinks(quick="--quick" in sys.argv):
        print(f"- {note}")
    print(f"\nMachine: {machine()}")
