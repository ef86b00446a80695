"""Events per second into the Datadog and Sumo Logic fakes: batched + gzip against one request
per event.

Each fake (`shipper.testing.receivers.datadog` / `.sumologic`) runs on a loopback port in this
process; every run sends the same pre-built events (held as the pipeline holds them: JSON bytes)
through the sink's `send()` + `flush()`, and the number of events the fake accepted must match.
The ratio column compares each mode with one request per event, uncompressed, on the same sink.

    .venv/bin/python bench/cloud_datadog_sumo.py [--events 20000] [--single 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shipper.emulator import generate_events
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import Sink, SinkContext
from shipper.runtime import logs
from shipper.testing.receivers.datadog import FakeDatadog
from shipper.testing.receivers.sumologic import FakeSumo
from sinks.datadog.sink import DatadogSettings, DatadogSink
from sinks.sumologic.sink import SumoLogicSettings, SumoLogicSink

API_KEY = "bench-dd-api-key-0123456789"
BATCHED = {"compression": "gzip"}  # and each sink's default batch limits
ONE_BY_ONE = {"compression": "none", "batch_max_events": 1}


@dataclass(frozen=True, slots=True)
class Result:
    sink: str
    mode: str
    events: int
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def events(count: int, *, now: int) -> list[AuditEvent]:
    """`count` events from the hour before `now` (inside Datadog's 18-hour window)."""
    raw = generate_events(count, start=now - 3600, end=now, seed=5)
    return [AuditEvent.from_api(obj, "acme", compact=True) for obj in raw]


def _timed(sink: Sink, batch: Sequence[AuditEvent]) -> float:
    sink.open()
    try:
        began = time.perf_counter()
        rejected = sink.send(batch)
        sink.flush()
        elapsed = time.perf_counter() - began
    finally:
        sink.close()
    if rejected:
        raise RuntimeError(f"{len(rejected)} events refused: {rejected[0].reason}")
    return elapsed


def run_datadog(batch: Sequence[AuditEvent], mode: str, workdir: Path, now: float) -> Result:
    key = workdir / "dd-key"
    key.write_text(API_KEY)
    fake = FakeDatadog({API_KEY}, clock=lambda: now)
    overrides = BATCHED if mode == "batched" else ONE_BY_ONE
    with fake.receiver:
        values: dict[str, Any] = {
            "type": "datadog",
            "name": "datadog",
            "url": fake.receiver.url,
            "api_key_file": str(key),
        }
        settings = DatadogSettings.model_validate({**values, **overrides})
        sink = DatadogSink(settings, SinkContext(state_dir=workdir), clock=lambda: now)
        seconds = _timed(sink, batch)
        accepted, requests = len(fake.logs), len(fake.receiver.requests)
    _count_must_match("datadog", accepted, len(batch))
    return Result("datadog", mode, len(batch), requests, seconds)


def run_sumologic(batch: Sequence[AuditEvent], mode: str, workdir: Path, now: float) -> Result:
    fake = FakeSumo()
    overrides = BATCHED if mode == "batched" else ONE_BY_ONE
    with fake.receiver:
        url = workdir / "sumo-url"
        url.write_text(fake.url)
        values: dict[str, Any] = {"type": "sumologic", "name": "sumo", "url_file": str(url)}
        settings = SumoLogicSettings.model_validate({**values, **overrides})
        seconds = _timed(SumoLogicSink(settings, SinkContext(state_dir=workdir)), batch)
        accepted, requests = len(fake.messages), len(fake.receiver.requests)
    _count_must_match("sumologic", accepted, len(batch))
    return Result("sumologic", mode, len(batch), requests, seconds)


def _count_must_match(sink: str, accepted: int, sent: int) -> None:
    if accepted != sent:
        raise RuntimeError(f"{sink}: the fake accepted {accepted} events of {sent}")


Runner = Callable[[Sequence[AuditEvent], str, Path, float], Result]
RUNNERS: dict[str, Runner] = {"datadog": run_datadog, "sumologic": run_sumologic}


def measure(batched: int, single: int) -> list[Result]:
    """Each sink batched over `batched` events, then one request per event over `single`."""
    now = int(time.time())
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for runner in RUNNERS.values():
            results.append(runner(events(batched, now=now), "batched", workdir, now))
            results.append(runner(events(single, now=now), "one per event", workdir, now))
    return results


def table(results: Sequence[Result]) -> str:
    """Markdown: events/s per sink and mode, and the ratio to one request per event."""
    base = {r.sink: r.rate for r in results if r.mode == "one per event"}
    rows = [
        "| sink | mode | events | requests | seconds | events/s | vs one per event |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = r.rate / base[r.sink] if r.sink in base else float("nan")
        rows.append(
            f"| {r.sink} | {r.mode} | {r.events} | {r.requests} | {r.seconds:.2f} "
            f"| {r.rate:,.0f} | {ratio:.1f}x |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="events per batched run")
    parser.add_argument("--single", type=int, default=2_000, help="events per one-by-one run")
    args = parser.parse_args(argv)
    logs.configure("warning", "json")  # a debug line per request would be measured too
    print(table(measure(args.events, args.single)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
