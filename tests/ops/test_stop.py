"""Stop means stop: SIGTERM ends `shipper run` within the grace period, whatever it waits on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator, Fault, generate_events
from shipper.pipeline.cursor_store import CursorStore
from shipper.runtime import app
from shipper.testing.receivers.base import Receiver, Reply
from shipper.testing.receivers.slow_peer import SlowPeer
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


class Process:
    """`shipper run` (follow mode) in a subprocess, its JSON log lines collected as they come."""

    def __init__(self, config: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shipper.cli.main", "run", "--config", str(config)],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, KEY_ENV: KEY},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for_log(self, event: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(f'"{event}"' in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {event} in:\n" + "".join(self.lines)
            time.sleep(0.05)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    events = generate_events(600, start=T0 - 2 * 86400, end=T0, seed=7)
    with Emulator(api_key=KEY, events=events) as emu:
        yield emu


def webhook_and_file(url: str, tmp_path: Path) -> str:
    return (
        f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{url}"\nformat = "raw"\n'
        'timeout = "60s"\nretry_max_time = "1h"\nretry_max_attempts = 100\n\n'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/out/audit.jsonl"\nformat = "raw"\n'
    )


def busy(_: object) -> Reply:
    return Reply(503, b"busy", {"retry-after": "120"})


@pytest.mark.parametrize("waiting_on", ["api_retry_after", "webhook_retry_after", "hung_webhook"])
def test_sigterm_ends_follow_mode_within_the_grace_period_and_loses_nothing(
    emulator: Emulator, tmp_path: Path, admin_key: str, waiting_on: str
) -> None:
    """SIGTERM while the API or a webhook says 503 + Retry-After: 120, or while a webhook hangs
    mid-answer: `shipper run` exits 0 within STOP_GRACE (the deploy files allow 60 s), every
    cursor file is valid, and the next run delivers every event to every sink."""
    with ExitStack() as stack:
        peer: SlowPeer | None = None
        if waiting_on == "hung_webhook":
            peer = stack.enter_context(SlowPeer(interval=1.0))
            hook_url = peer.url
        else:
            hook_url = stack.enter_context(Receiver(busy)).url
        if waiting_on == "api_retry_after":
            emulator.inject(Fault("503", count=10_000, retry_after="120"))
        extra = 'retry_max_time = "1h"\nretry_max_attempts = 100\nrequest_timeout = "60s"\n'
        text = config_text(emulator.base_url, tmp_path, sinks=webhook_and_file(hook_url, tmp_path))
        config = write_config(tmp_path, text.replace('retry_max_time = "20s"\n', extra))
        process = Process(config)
        stack.callback(process.close)
        if peer is not None:
            deadline = time.monotonic() + 30
            while not peer.requests:  # the webhook's request is now hanging
                assert time.monotonic() < deadline, "".join(process.lines)
                time.sleep(0.05)
        else:
            process.wait_for_log("retrying")
        began = time.monotonic()
        process.proc.send_signal(signal.SIGTERM)
        code = process.proc.wait(timeout=app.STOP_GRACE + 5)
        took = time.monotonic() - began
        assert code == 0, "".join(process.lines)
        assert took < app.STOP_GRACE, took
        store = CursorStore(tmp_path / "state", "default")
        for sink in ("hook", "archive"):
            assert store.load(sink) is not None
    # Healed: the next run delivers everything, the window abandoned at the stop included.
    emulator.clear_faults()
    with Receiver() as healthy:
        text = config_text(
            emulator.base_url, tmp_path, sinks=webhook_and_file(healthy.url, tmp_path)
        )
        outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
        delivered = {
            orjson.loads(line)["id"]
            for request in healthy.requests
            for line in request.body.splitlines()
        }
    assert exit_code_of_run(outcome) == ExitCode.OK
    expected = [e["id"] for e in emulator.events()]
    assert sorted(set(ids_in(tmp_path / "out" / "audit.jsonl"))) == sorted(expected)
    assert delivered == set(expected)
