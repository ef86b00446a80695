"""Shared fixtures: a running emulator, configs that point at it, helpers for the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shipper.emulator import Emulator, generate_events

KEY = "sk-admin-test-0123456789abcdefSECRET"
T0 = 1_750_000_000  # a fixed "now" for generated history
KEY_ENV = "SHIPPER_TEST_ADMIN_KEY"


@pytest.fixture
def admin_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


@pytest.fixture(params=["desc", "asc"])
def order(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def emulator(order: str) -> Iterator[Emulator]:
    events = generate_events(600, start=T0 - 2 * 86400, end=T0, seed=7)
    with Emulator(api_key=KEY, events=events, order=order) as emu:  # type: ignore[arg-type]
        yield emu


def config_text(
    base_url: str,
    tmp_path: Path,
    *,
    start_at: int = T0 - 3 * 86400,
    extra_source: str = "",
    sinks: str | None = None,
) -> str:
    import time

    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_at))
    sinks = sinks or (
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/out/audit.jsonl"\nformat = "raw"\n'
    )
    return (
        f'[source]\nbase_url = "{base_url}"\napi_key_env = "{KEY_ENV}"\nstart_at = "{start}"\n'
        f'lookback = "10m"\npoll_interval = "1s"\nretry_max_time = "20s"\n{extra_source}\n'
        f'[state]\ndir = "{tmp_path}/state"\n\n[log]\nformat = "json"\n\n'
        f'[metrics]\nlisten = "127.0.0.1:0"\n\n{sinks}'
    )


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "shipper.toml"
    path.write_text(text)
    return path


@contextmanager
def follow_mode(config: Path) -> Iterator[subprocess.Popen[str]]:
    """`shipper run --config` (follow mode) as a process, stderr piped; killed and reaped on exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper.cli.main", "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, KEY_ENV: KEY},
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
