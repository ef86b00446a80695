"""`shipper demo`: the whole pipeline against the built-in emulators, no key needed.

Starts both emulators on loopback ports (the audit-log API with a few days of realistic
events, the Compliance Logs Platform with files of sign-ins and admin actions over the same
days), writes a config into the output directory, runs `run --once` to four JSON-lines files
(audit log: raw and normalized; ChatGPT compliance: raw and ECS) and prints what landed where.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

from shipper.cli.exit_codes import exit_code_of_run
from shipper.config.settings import load_config
from shipper.runtime import app, logs

DEMO_KEY_ENV = "SHIPPER_DEMO_ADMIN_KEY"
DEMO_KEY = "sk-admin-emulator-demo"
COMPLIANCE_KEY_ENV = "SHIPPER_DEMO_COMPLIANCE_KEY"
COMPLIANCE_KEY = "sk-proj-compliance-emulator-demo"
COMPLIANCE_TYPES = ("AUTH_LOG", "AUDIT_LOG")
DAYS = 3

CONFIG = """\
# Written by `shipper demo`: the pipeline against the built-in emulators.
[[sources]]
name = "audit"
base_url = "{base_url}"
api_key = {{ env = "{key_env}" }}
organization = "demo-org"
start_at = "{start_at}"
lookback = "10m"

[[sources]]
type = "chatgpt_compliance"
name = "chatgpt"
base_url = "{compliance_url}"
scope = "workspaces/{workspace}"
api_key = {{ env = "{compliance_key_env}" }}
event_types = [{compliance_types}]
start_at = "{start_at}"

[state]
dir = "{out}/state"

[[sinks]]
type = "file"
name = "raw"
sources = ["audit"]
path = "{out}/audit-raw.jsonl"
format = "raw"

[[sinks]]
type = "file"
name = "normalized"
sources = ["audit"]
path = "{out}/audit-normalized.jsonl"
format = "normalized"

[[sinks]]
type = "file"
name = "chatgpt-raw"
sources = ["chatgpt"]
path = "{out}/chatgpt-raw.jsonl"
format = "raw"

[[sinks]]
type = "file"
name = "chatgpt-ecs"
sources = ["chatgpt"]
path = "{out}/chatgpt-ecs.jsonl"
format = "ecs"
"""

OUTPUTS = (
    ("audit-raw", "audit-log events, as the API sent them"),
    ("audit-normalized", "audit-log events, normalized"),
    ("chatgpt-raw", "ChatGPT compliance records, as in their files"),
    ("chatgpt-ecs", "ChatGPT compliance records, in ECS"),
)


def _count(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def run_demo(out: Path, *, events: int = 2000) -> int:
    from shipper.emulator import Emulator, generate_events
    from shipper.emulator.compliance.server import ComplianceEmulator

    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    start = now - DAYS * 86400
    os.environ[DEMO_KEY_ENV] = DEMO_KEY
    os.environ[COMPLIANCE_KEY_ENV] = COMPLIANCE_KEY
    with (
        Emulator(api_key=DEMO_KEY, events=generate_events(events, start=start, end=now - 1)) as emu,
        ComplianceEmulator(api_key=COMPLIANCE_KEY) as files,
    ):
        for kind in COMPLIANCE_TYPES:  # a file every 2 hours per type, the last one an hour ago
            first = dt.datetime.fromtimestamp(start, dt.UTC)
            files.add_files(kind, count=DAYS * 12 - 1, start=first, spacing=7200.0)
        config_path = out / "shipper.toml"
        config_path.write_text(
            CONFIG.format(
                base_url=emu.base_url,
                key_env=DEMO_KEY_ENV,
                compliance_url=files.base_url,
                workspace=files.workspace_id,
                compliance_key_env=COMPLIANCE_KEY_ENV,
                compliance_types=", ".join(f'"{t}"' for t in COMPLIANCE_TYPES),
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
        records = len({r["event_id"] for kind in COMPLIANCE_TYPES for r in files.records(kind)})
    print(
        f"emulators held {held} audit-log events and {records} ChatGPT compliance records over "
        f"the last {DAYS} days; run took {seconds:.2f}s"
    )
    for name, what in OUTPUTS:
        path = out / f"{name}.jsonl"
        print(f"  {path}: {_count(path)} {what}")
    print(f"config: {config_path}  (try: shipper status --config {config_path})")
    return int(exit_code_of_run(outcome))
