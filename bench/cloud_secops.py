"""Throughput into the fake Google SecOps: batched imports against one request per event.

The fake (shipper.testing.receivers.secops) runs in this process on loopback, token endpoint
included: the sink gets its token through google-auth once, then imports. Each mode sends the
same pre-built events (held as the pipeline holds them: JSON bytes) through `send()` +
`flush()`; the fake's count of imported logs must match. The table gives events per second and
each mode's ratio to one request per event. Numbers from loopback measure the sink's own cost
(encoding, base64, HTTP), not Google's.

    .venv/bin/python bench/cloud_secops.py --events 20000 --single 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shipper.emulator import generate_events
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import SinkContext
from shipper.runtime.logs import configure
from shipper.testing.receivers.secops import FakeSecOps
from sinks.secops.settings import SecOpsSettings
from sinks.secops.sink import SecOpsSink

MODES: dict[str, dict[str, Any]] = {
    "batched (defaults: 1000 logs / 1 MB)": {},
    "batched, gzip": {"compression": "gzip"},
    "one request per event": {"batch_max_events": 1},
}
ONE_BY_ONE = "one request per event"


@dataclass(frozen=True, slots=True)
class Result:
    mode: str
    events: int
    requests: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def events(count: int) -> list[AuditEvent]:
    raw = generate_events(count, start=1_750_000_000, end=1_750_000_000 + 86_400, seed=3)
    return [AuditEvent.from_api(obj, "acme", compact=True) for obj in raw]


def run_mode(fake: FakeSecOps, key: Path, mode: str, batch: list[AuditEvent]) -> Result:
    fake.reset()
    values: dict[str, Any] = {
        "name": "secops",
        "url": fake.url,
        "project": fake.project,
        "region": fake.location,
        "instance": fake.instance,
        "credentials_file": str(key),
    }
    settings = SecOpsSettings.model_validate({**values, **MODES[mode]})
    sink = SecOpsSink(settings, SinkContext(state_dir=key.parent))
    sink.open()
    try:
        sink.probe()  # the token exchange happens here, outside the timed part
        began = time.perf_counter()
        rejected = sink.send(batch)
        sink.flush()
        seconds = time.perf_counter() - began
    finally:
        sink.close()
    if rejected or len(fake.logs) != len(batch):
        raise RuntimeError(f"{mode}: {len(fake.logs)} of {len(batch)} imported")
    return Result(mode, len(batch), len(fake.import_sizes), seconds)


def run(count: int, single: int) -> list[Result]:
    """Every mode once: the batched ones with `count` events, one-per-event with `single`."""
    with tempfile.TemporaryDirectory() as tmp, FakeSecOps() as fake:
        key = Path(tmp) / "key.json"
        key.write_text(json.dumps(fake.new_account()), encoding="utf-8")
        big, small = events(count), events(single)
        return [run_mode(fake, key, mode, small if mode == ONE_BY_ONE else big) for mode in MODES]


def table(results: list[Result]) -> str:
    base = next((r.rate for r in results if r.mode == ONE_BY_ONE), 0.0)
    lines = [
        "| mode | events | requests | seconds | events/s | x one-per-event |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        ratio = f"{r.rate / base:.1f}" if base > 0 else "-"
        lines.append(
            f"| {r.mode} | {r.events} | {r.requests} | {r.seconds:.2f} | {r.rate:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per batched mode")
    parser.add_argument("--single", type=int, default=2_000, help="events sent one per request")
    args = parser.parse_args(argv)
    configure("warning", "json", sys.stderr)  # a line per request would be measured too
    print(table(run(args.events, args.single)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
