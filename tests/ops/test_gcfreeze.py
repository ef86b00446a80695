"""`shipper run` freezes what start-up built, so garbage collections and the exit skip it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shipper.emulator import Emulator, generate_events
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config

ROOT = Path(__file__).resolve().parents[2]

# `shipper run`, then how many objects the process holds frozen.
RUN_THEN_COUNT_FROZEN = """
import gc, sys
from shipper.cli.main import main
code = main(sys.argv[1:])
print(gc.get_freeze_count())
sys.exit(code)
"""


def test_run_freezes_what_start_up_built(tmp_path: Path) -> None:
    """The imports behind `run` (pydantic, httpx, structlog, the config) leave tens of thousands
    of long-lived objects: all frozen before the first cycle, and the run still delivers."""
    events = generate_events(50, start=T0 - 3600, end=T0, seed=3)
    with Emulator(api_key=KEY, events=events) as emulator:
        config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
        result = subprocess.run(
            [sys.executable, "-c", RUN_THEN_COUNT_FROZEN, "run", "--once", "--config", str(config)],
            cwd=ROOT,
            env={**os.environ, KEY_ENV: KEY},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20_000
    assert len((tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()) == 50
