"""logrotate against a running follow-mode process: rename the file, SIGHUP, nothing lost."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from shipper.emulator import Emulator
from tests.conftest import config_text, follow_mode, write_config


class StderrLines:
    """Collects a subprocess's stderr lines on a thread, so the test can wait for one."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        assert proc.stderr is not None
        self._stream = proc.stderr
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout: float = 60) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.lines), timeout=timeout)


def cycles(lines: list[str]) -> int:
    return sum('"cycle_complete"' in line for line in lines)


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def test_sighup_after_logrotate_reopens_the_file_and_follow_mode_carries_on(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Rename the output (logrotate, no copytruncate) and SIGHUP the follow-mode process: it keeps
    running, reopens, and new events land in a new file at the configured path."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    out = tmp_path / "out" / "audit.jsonl"
    with follow_mode(config) as proc:
        stderr = StderrLines(proc)
        assert stderr.wait_for(lambda lines: cycles(lines) >= 1), "no first cycle"
        before = set(ids_in(out))
        assert before == {e["id"] for e in emulator.events()}
        out.rename(out.with_name("audit.jsonl.1"))
        proc.send_signal(signal.SIGHUP)
        late = {e["id"] for e in emulator.add_late_events(7, max_age=20)}
        deadline = time.monotonic() + 60
        while not late <= set(ids_in(out)) and time.monotonic() < deadline:
            assert proc.poll() is None, f"SIGHUP ended the process (exit {proc.returncode})"
            seen = cycles(stderr.lines)
            stderr.wait_for(lambda lines: cycles(lines) > seen, timeout=5)  # noqa: B023
        assert proc.poll() is None, f"SIGHUP ended the process (exit {proc.returncode})"
        assert late <= set(ids_in(out))
        assert before <= set(ids_in(out.with_name("audit.jsonl.1")))
        assert stderr.wait_for(lambda lines: any('"SIGHUP"' in line for line in lines), 10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
