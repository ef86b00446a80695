"""Kill -9 at random moments under injected API faults: afterwards every event is in the file."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from shipper.emulator import Emulator, Fault, generate_events
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config

ROUNDS = 8


def test_sigkill_at_random_moments_never_loses_an_event(tmp_path: Path) -> None:
    """SIGKILL of `run --once` at random instants, with 5xx/429/garbled pages and late events, loses nothing."""
    rng = random.Random(20261126)
    events = generate_events(3000, start=T0 - 86400, end=T0, seed=3)
    with Emulator(api_key=KEY, events=events, page_delay=0.004) as emu:
        for kind in ("500", "429", "truncated", "concatenated"):
            emu.inject(
                Fault(kind=kind, probability=0.04, retry_after="0" if kind == "429" else None)
            )
        text = config_text(
            emu.base_url,
            tmp_path,
            start_at=T0 - 2 * 86400,
            extra_source="window_max_events = 200\nconcurrency = 2\nretry_max_attempts = 50\n",
        )
        config = write_config(tmp_path, text)
        env = {**os.environ, KEY_ENV: KEY}
        kills = 0
        for _ in range(ROUNDS):
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shipper.cli.main",
                    "run",
                    "--once",
                    "--config",
                    str(config),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            time.sleep(rng.uniform(0.3, 2.0))  # the random kill instant is the point of the test
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            emu.add_late_events(5, max_age=120)
        emu.clear_faults()
        final = subprocess.run(
            [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
        )
        assert final.returncode == 0, final.stderr[-2000:]
        truth = [e["id"] for e in emu.events()]
    lines = (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    received = Counter(
        orjson.loads(line)["id"] for line in lines
    )  # every line parses: no torn lines
    assert kills >= 3, "the runs finished before they could be killed: slow them down"
    assert set(truth) <= set(received), f"missing {len(set(truth) - set(received))} events"
    duplicates = sum(received.values()) - len(received)
    assert duplicates <= kills * 2 * 200 * 2  # at most the windows in flight per kill
