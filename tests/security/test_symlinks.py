"""A symbolic link planted where shipper writes is refused with a clear error, never followed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shipper.emulator import Emulator
from shipper.errors import SinkRetryableError
from shipper.model.event import AuditEvent
from shipper.pipeline import deadletter
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore, StateLock
from shipper.pipeline.sink import Rejection, SinkContext
from shipper.runtime.durable_files import SymlinkRefusedError, atomic_write
from shipper.testing.contract.events import api_event, events
from sinks.file.sink import FileSettings, plugin
from tests.conftest import KEY, KEY_ENV, config_text, write_config


@pytest.fixture
def order() -> str:
    """One API order is enough here (conftest runs both)."""
    return "desc"


PRECIOUS = b"root:x:0:0:root:/root:/bin/bash\n"


def plant(link: Path, tmp_path: Path) -> Path:
    """A symbolic link at `link` to a file the attacker wants overwritten; returns the target."""
    target = tmp_path / "precious"
    target.write_bytes(PRECIOUS)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target


def test_file_sink_refuses_a_symlinked_output_file(tmp_path: Path) -> None:
    """An output file that is a link fails the sink with the path named; the target is untouched."""
    path = tmp_path / "out" / "audit.jsonl"
    target = plant(path, tmp_path)
    settings = FileSettings(type="file", name="archive", path=str(path))
    sink = plugin.create(settings, SinkContext(state_dir=tmp_path / "state"))
    with pytest.raises(SinkRetryableError, match=re.escape(f"{path} is a symbolic link")):
        sink.open()
        sink.send(events(2))
        sink.flush()
    sink.close()
    assert target.read_bytes() == PRECIOUS


def test_dead_letters_are_never_written_through_a_symlink(tmp_path: Path) -> None:
    """A dead-letter file that is a link is refused (the window fails, so nothing is lost)."""
    path = deadletter.default_path(tmp_path, "archive")
    target = plant(path, tmp_path)
    rejection = Rejection(AuditEvent.from_api(api_event(1)), "400 mapping conflict")
    with pytest.raises(SymlinkRefusedError, match=re.escape(f"{path} is a symbolic link")):
        deadletter.append(path, "archive", [rejection], now=1_720_000_000)
    assert target.read_bytes() == PRECIOUS


def test_the_state_lock_is_never_taken_through_a_symlink(tmp_path: Path) -> None:
    """Taking the lock truncates and writes the pid: through a link that would clobber the target."""
    target = plant(tmp_path / "state" / "shipper.lock", tmp_path)
    with pytest.raises(SymlinkRefusedError, match=r"shipper\.lock is a symbolic link"):
        StateLock(tmp_path / "state").acquire()
    assert target.read_bytes() == PRECIOUS


def test_a_symlinked_cursor_file_is_neither_read_nor_replaced(tmp_path: Path) -> None:
    """A cursor file that is a link is refused both ways, naming the path; the link stays as found."""
    store = CursorStore(tmp_path / "state", "default")
    target = plant(store.path("archive"), tmp_path)
    with pytest.raises(SymlinkRefusedError, match=r"archive\.json is a symbolic link"):
        store.load("archive")
    with pytest.raises(SymlinkRefusedError, match=r"archive\.json is a symbolic link"):
        store.save("archive", Cursor(high_water=1))
    assert target.read_bytes() == PRECIOUS
    assert store.path("archive").is_symlink()


def test_atomic_write_refuses_a_symlinked_target(tmp_path: Path) -> None:
    """Atomic replacement of a link is refused with a clear error; no temp file is left behind."""
    link = tmp_path / "metrics.prom"
    target = plant(link, tmp_path)
    with pytest.raises(SymlinkRefusedError):
        atomic_write(link, b"new")
    assert target.read_bytes() == PRECIOUS
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, KEY_ENV: KEY},
    )


def test_run_with_a_planted_lock_link_exits_with_a_message_not_a_traceback(tmp_path: Path) -> None:
    """`shipper run` with a link planted as the lock file: exit 2, the path named, target intact."""
    config = write_config(tmp_path, config_text("http://127.0.0.1:9/v1", tmp_path))
    target = plant(tmp_path / "state" / "shipper.lock", tmp_path)
    result = run_once(config)
    assert result.returncode == 2, result.stderr
    assert "shipper.lock is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_bytes() == PRECIOUS


def test_run_with_a_planted_output_link_fails_the_sink_and_keeps_its_cursor(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A link planted as the output file: exit 5, the path named, the cursor and target unmoved."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    output = tmp_path / "out" / "audit.jsonl"
    target = plant(output, tmp_path)
    result = run_once(config)
    assert result.returncode == 5, result.stderr
    assert f"{output} is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_bytes() == PRECIOUS
    cursor = CursorStore(tmp_path / "state", "default").load("archive")
    assert cursor is not None and cursor.seen == {}
