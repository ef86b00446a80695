"""`shipper demo`: the whole pipeline against the built-in emulator, no admin key needed.

Starts the emulator on a loopback port with a few days of realistic events, writes a config
into the output directory, runs `run --once` to two JSON-lines files (raw and normalized), and
prints what landed where.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from shipper.cli.exit_codes import exit_code_of_run
from shipper.config.settings import load_config
from shipper.runtime import app, logs

DEMO_KEY_ENV = "SHIPPER_DEMO_ADMIN_KEY"
DEMO_KEY = "sk-admin-emulator-demo"
DAYS = 3

CONFIG = """\
# Written by `shipper demo`: the pipeline against the built-in emulator.
[source]
base_url = "{base_url}"
api_key_env = "{key_env}"
organization = "demo-org"
start_at = "{start_at}"
lookback = "10m"

[state]
dir = "{out}/state"

[[sinks]]
type = "file"
name = "raw"
path = "{out}/audit-raw.jsonl"
format = "raw"

[[sinks]]
type = "file"
name = "normalized"
path = "{out}/audit-normalized.jsonl"
format = "normalized"
"""


def _count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def run_demo(out: Path, *, events: int = 2000) -> int:
    from shipper.emulator import Emulator, generate_events

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    start = now - DAYS * 86400
    os.environ[DEMO_KEY_ENV] = DEMO_KEY
    with Emulator(
        api_key=DEMO_KEY, events=generate_events(events, start=start, end=now - 1)
    ) as emu:
        config_path = out / "shipper.toml"
        config_path.write_text(
            CONFIG.format(
                base_url=emu.base_url,
                key_env=DEMO_KEY_ENV,
                start_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                out=out.as_posix(),
            ),
            encoding="utf-8",
        )
        config = load_config(config_path)
        logs.configure("warning", "console")
        began = time.monotonic()
        outcome = app.run(config, once=True)
        seconds = time.monotonic() - began
        held = len(emu.events())
    print(f"emulator held {held} events over the last {DAYS} days; run took {seconds:.2f}s")
    for name in ("raw", "normalized"):
        path = out / f"audit-{name}.jsonl"
        print(f"  {path}: {_count(path)} events ({name})")
    print(f"config: {config_path}  (try: shipper status --config {config_path})")
    return int(exit_code_of_run(outcome))
