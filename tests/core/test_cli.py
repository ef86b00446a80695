"""The `shipper` command as operators run it: subprocesses, exit codes, messages, signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from shipper.emulator import Emulator
from shipper.runtime import signals
from tests.conftest import KEY, KEY_ENV, config_text, follow_mode, write_config


def shipper(
    *args: str, env_key: str | None = KEY, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    if env_key is not None:
        env[KEY_ENV] = env_key
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_help_documents_exit_codes() -> None:
    """`shipper --help` lists every exit code."""
    result = shipper("--help")
    assert result.returncode == 0
    for code in ("0 ", "2 ", "3 ", "4 ", "5 ", "6 ", "7 "):
        assert f"  {code}" in result.stdout


def test_run_once_then_status(emulator: Emulator, tmp_path: Path) -> None:
    """`run --once` exits 0 having written every event; `status` shows the cursor and lag; `--json` parses."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    result = shipper("run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    assert len(lines) == len(emulator.events())
    summary = [
        orjson.loads(line) for line in result.stderr.splitlines() if '"cycle_complete"' in line
    ]
    assert summary and summary[0]["sinks"]["archive"]["delivered"] == len(lines)
    status = shipper("status", "--config", str(config))
    assert (
        status.returncode == 0
        and "archive" in status.stdout
        and "cursors/archive.json" in status.stdout
    )
    doc = orjson.loads(shipper("status", "--json", "--config", str(config)).stdout)
    assert doc["sources"][0]["sinks"][0]["lag_seconds"] < 600
    assert KEY not in status.stdout + result.stderr


def test_config_error_exit_2_names_file_and_key(tmp_path: Path) -> None:
    """A bad config exits 2 with one line naming the file and the key; no traceback."""
    config = write_config(
        tmp_path,
        config_text("http://127.0.0.1:9/v1", tmp_path).replace(
            'lookback = "10m"', 'lookback = "soon"'
        ),
    )
    result = shipper("run", "--once", "--config", str(config))
    assert result.returncode == 2
    assert f"{config}" in result.stderr and "source.lookback" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_key_is_a_config_error(emulator: Emulator, tmp_path: Path) -> None:
    """No admin key in the environment: exit 2 saying which variable to set."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    result = shipper("run", "--once", "--config", str(config), env_key=None)
    assert result.returncode == 2 and KEY_ENV in result.stderr


def test_wrong_key_exit_3_without_the_key(emulator: Emulator, tmp_path: Path) -> None:
    """A rejected key exits 3 with advice; the key appears nowhere in the output."""
    wrong = "sk-admin-not-the-right-one-42424242"
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    result = shipper("run", "--once", "--config", str(config), env_key=wrong)
    assert result.returncode == 3
    assert "HTTP 401" in result.stderr and "Traceback" not in result.stderr
    assert wrong not in result.stderr + result.stdout


def test_second_run_on_same_state_exits_6(emulator: Emulator, tmp_path: Path) -> None:
    """While one run holds the state directory, another exits 6 with a clear message."""
    from shipper.pipeline.cursor_store import StateLock

    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    with StateLock(tmp_path / "state"):
        result = shipper("run", "--once", "--config", str(config))
    assert result.returncode == 6 and "another shipper" in result.stderr


def test_check_prints_a_verdict_per_component(emulator: Emulator, tmp_path: Path) -> None:
    """`check` validates the config, probes the API and each sink, and prints OK per component."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    result = shipper("check", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^config +OK", result.stdout, re.M) and re.search(
        r"^source default +OK", result.stdout, re.M
    )
    assert "sink archive (file)" in result.stdout
    bad = shipper("check", "--config", str(config), env_key="sk-admin-wrong-key-000000")
    assert bad.returncode == 3 and "FAIL" in bad.stdout


def test_follow_mode_stops_cleanly_on_sigterm(emulator: Emulator, tmp_path: Path) -> None:
    """Follow mode exits 0 soon after SIGTERM, having committed what it delivered."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    with follow_mode(config) as proc:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "cycle_complete" in line or not line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert len((tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()) == len(
        emulator.events()
    )


def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    """`shipper demo` runs both emulators and the pipeline: each source's two files hold all of
    its events and none of the other's (each sink names its source)."""
    result = shipper("demo", "--out", str(tmp_path / "demo"), "--events", "300", env_key=None)
    assert result.returncode == 0, result.stderr

    def ids(name: str, key: str) -> list[str]:
        lines = (tmp_path / "demo" / f"{name}.jsonl").read_bytes().splitlines()
        return [str(orjson.loads(line).get(key)) for line in lines]

    assert len(set(ids("audit-raw", "id"))) == len(ids("audit-normalized", "id")) == 300
    records = ids("chatgpt-raw", "event_id")
    assert records and "None" not in records and len(set(records)) == len(records)
    assert len(ids("chatgpt-ecs", "@timestamp")) == len(records)
    assert "300 audit-log events" in result.stdout
    assert f"{len(records)} ChatGPT compliance records" in result.stdout


@pytest.mark.timeout(10)  # the deadlock this guards against never ends by itself
def test_the_stop_signal_never_waits_for_the_lock_the_main_thread_holds() -> None:
    """SIGTERM can land while the main thread holds the stop Event's lock (inside `wait()`).

    The handler then must not take that lock itself: it would wait for it forever. `_cond` is
    CPython's Event internals, held here the way `Event.wait()` holds it.
    """
    stop = threading.Event()
    handler = signals.stop_handler(stop)
    with stop._cond:  # type: ignore[attr-defined]
        handler(signal.SIGTERM, None)  # a handler calling stop.set() directly never returns
        assert not stop.is_set()
    assert stop.wait(timeout=10)


def test_damaged_cursor_file_exits_7_naming_the_file(emulator: Emulator, tmp_path: Path) -> None:
    """A damaged cursor file exits 7 (not 1, a bug) with its path and what to do."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    assert shipper("run", "--once", "--config", str(config)).returncode == 0
    cursor = tmp_path / "state" / "default" / "cursors" / "archive.json"
    cursor.write_text("{not json")
    result = shipper("run", "--once", "--config", str(config))
    assert result.returncode == 7, result.stderr
    assert str(cursor) in result.stderr and "restore it from a backup" in result.stderr
    assert "Traceback" not in result.stderr


def test_damaged_dead_letter_file_exits_7_naming_the_file(tmp_path: Path) -> None:
    """A damaged dead-letter file exits 7 with its path and line; no traceback."""
    config = write_config(tmp_path, config_text("http://127.0.0.1:9/v1", tmp_path))
    dead = tmp_path / "state" / "dead-letter" / "archive.jsonl"
    dead.parent.mkdir(parents=True)
    dead.write_text("{not json\n")
    result = shipper("dlq", "list", "--sink", "archive", "--config", str(config))
    assert result.returncode == 7, result.stderr
    assert "line 1" in result.stderr and "Traceback" not in result.stderr
