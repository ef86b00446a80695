"""`shipper init` writes a usable starter config; the progress bar shows on terminals only."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

from shipper.cli.main import main
from shipper.config.settings import load_config
from shipper.config.starter import starter_config
from shipper.emulator import Emulator, generate_events
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_init_writes_a_private_config_that_loads(tmp_path: Path) -> None:
    """The starter config is written 0600, validates as is, and is never silently overwritten."""
    target = tmp_path / "etc" / "shipper.toml"
    assert main(["init", "--config", str(target)]) == 0
    assert target.stat().st_mode & 0o777 == 0o600
    config = load_config(target)
    assert config.all_sources[0].api_key.env == "OPENAI_ADMIN_KEY"
    assert main(["init", "--config", str(target)]) == 2
    assert main(["init", "--config", str(target), "--force"]) == 0


def test_deploy_example_is_the_init_template() -> None:
    """deploy/shipper.example.toml and `shipper init` are one file, so they cannot drift apart."""
    assert (ROOT / "deploy" / "shipper.example.toml").read_text() == starter_config()


def run_on_terminal(config: Path, timeout: float = 60.0) -> str:
    """Run `shipper run --once` with stderr on a pseudo-terminal; return what it drew there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env={**os.environ, KEY_ENV: KEY, "COLUMNS": "160", "TERM": "xterm"},
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_but_not_in_json_mode(tmp_path: Path) -> None:
    """On a terminal with console logs a backfill draws a progress bar; with JSON logs it draws none."""
    events = generate_events(3000, start=T0 - 20 * 86400, end=T0, seed=8)
    with Emulator(api_key=KEY, events=events, page_delay=0.01) as emu:
        extra = "window_max_events = 200\nconcurrency = 2\n"
        console = config_text(emu.base_url, tmp_path / "a", extra_source=extra).replace(
            'format = "json"', 'format = "console"'
        )
        (tmp_path / "a").mkdir()
        drawn = run_on_terminal(write_config(tmp_path / "a", console))
        assert "backfill" in drawn and "windows" in drawn and "ev/s" in drawn
        (tmp_path / "b").mkdir()
        quiet = run_on_terminal(
            write_config(
                tmp_path / "b", config_text(emu.base_url, tmp_path / "b", extra_source=extra)
            )
        )
        assert "backfill" not in quiet and '"cycle_complete"' in quiet
