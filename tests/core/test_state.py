"""State: atomic cursor files, one lock per state directory, nothing secret on disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipper.errors import LockHeldError
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore, StateCorruptError, StateLock
from shipper.runtime.durable_files import atomic_write


def test_cursor_round_trip_and_private_mode(tmp_path: Path) -> None:
    """A saved cursor loads back equal, in a file only its owner can read."""
    store = CursorStore(tmp_path, "default")
    store.save("archive", Cursor(high_water=123, seen={"a": 120}))
    assert store.load("archive") == Cursor(high_water=123, seen={"a": 120})
    assert os.stat(store.path("archive")).st_mode & 0o777 == 0o600
    assert store.load("other") is None


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    """Replacing a file leaves only the new content and no temporary file behind."""
    target = tmp_path / "x.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_corrupt_cursor_is_reported_with_the_fix(tmp_path: Path) -> None:
    """An unreadable cursor file stops the run with a message saying what to do."""
    store = CursorStore(tmp_path, "default")
    store.path("archive").parent.mkdir(parents=True)
    store.path("archive").write_text("{not json")
    with pytest.raises(StateCorruptError, match="delete it"):
        store.load("archive")


def test_second_lock_on_the_same_directory_fails_clearly(tmp_path: Path) -> None:
    """A second process cannot take the lock while the first holds it; the message names the pid."""
    with StateLock(tmp_path):
        code = (
            "import sys; from pathlib import Path; from shipper.pipeline.cursor_store import StateLock\n"
            "from shipper.errors import LockHeldError\n"
            f"try:\n    StateLock(Path({str(tmp_path)!r})).acquire()\n"
            "except LockHeldError as e:\n    print(e); sys.exit(6)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 6
        assert f"pid {os.getpid()}" in result.stdout
    StateLock(tmp_path).acquire()  # released on exit: free again


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    """SIGKILL of the holder frees the lock (flock): no stale lock to clean up by hand."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"from pathlib import Path; from shipper.pipeline.cursor_store import StateLock; import sys, time\n"
            f"StateLock(Path({str(tmp_path)!r})).acquire(); print('locked', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeldError):
            StateLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
        if holder.stdout:
            holder.stdout.close()
    StateLock(tmp_path).acquire()


def test_cursor_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    """A cursor file written by a newer shipper is not guessed at: the error says so."""
    store = CursorStore(tmp_path, "default")
    store.save("archive", Cursor(high_water=1))
    path = store.path("archive")
    path.write_text(path.read_text().replace('"version": 1', '"version": 99'))
    with pytest.raises(StateCorruptError, match="newer shipper"):
        store.load("archive")
