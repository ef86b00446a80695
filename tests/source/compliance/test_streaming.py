"""A log file bigger than a window streams to the sinks in batches, through the real CLI and
runtime: every record lands once, no request holds more than a batch, the cursor passes the
file only when its last batch is settled, and a sink that fails midway through the file resumes
after the records it had, without sending them again."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from shipper.cli.main import main
from shipper.emulator.compliance import ComplianceEmulator
from shipper.pipeline.cursor_store import CursorStore
from shipper.testing.receivers.webhook import FakeWebhook
from tests.source.compliance.conftest import KEY, START, make_source

KEY_ENV = "SHIPPER_TEST_COMPLIANCE_KEY"
BATCH = 100  # window_max_events: the batch a streamed second is delivered in
BIG = 1000  # records in the big file: ten batches


def write_config(tmp_path: Path, emu: ComplianceEmulator, hook: FakeWebhook) -> Path:
    path = tmp_path / "shipper.toml"
    path.write_text(
        f'[[sources]]\ntype = "chatgpt_compliance"\nname = "ws"\nbase_url = "{emu.base_url}"\n'
        f'scope = "workspaces/{emu.workspace_id}"\nevent_types = ["AUTH_LOG"]\n'
        f'api_key_env = "{KEY_ENV}"\nstart_at = "2026-07-19T23:00:00Z"\nlookback = "1h"\n'
        f'window_max_events = {BATCH}\nretry_max_attempts = 2\nretry_max_time = "5s"\n\n'
        f'[state]\ndir = "{tmp_path}/state"\n\n[log]\nformat = "json"\n\n'
        '[metrics]\nlisten = ""\n\n'
        # One request per window: a request's size is the size of what the pipeline handed on.
        f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.receiver.url}"\n'
        'format = "raw"\nbatch_max_events = 5000\nretry_max_attempts = 1\nretry_max_time = "5s"\n'
    )
    return path


@pytest.fixture
def files(emulator: ComplianceEmulator, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A small file, a big one 10 minutes later, a small one after; the big file's ids."""
    monkeypatch.setenv(KEY_ENV, KEY)
    emulator.add_files("AUTH_LOG", end_times=[START], records_per_file=5)
    (big,) = emulator.add_files(
        "AUTH_LOG", end_times=[START + timedelta(minutes=10)], records_per_file=BIG
    )
    emulator.add_files("AUTH_LOG", end_times=[START + timedelta(minutes=20)], records_per_file=5)
    return [r["event_id"] for r in emulator.file_records(big)]


def test_a_file_bigger_than_a_window_streams_in_batches_and_lands_once(
    emulator: ComplianceEmulator, tmp_path: Path, files: list[str]
) -> None:
    """1010 records, 1000 of them in one file (one second): every record once, in requests of
    at most a batch, the file downloaded once, the cursor past the last file."""
    hook = FakeWebhook()
    with hook.receiver:
        assert main(["run", "--once", "--config", str(write_config(tmp_path, emulator, hook))]) == 0
    ids = hook.ids()
    expected = {r["event_id"] for r in emulator.records("AUTH_LOG")}
    assert len(ids) == len(set(ids)) == len(expected) == BIG + 10
    assert set(ids) == expected
    assert max(len(d.documents) for d in hook.deliveries) <= BATCH
    assert emulator.stats.storage_requests == 3  # the big file read again from its spool
    cursor = CursorStore(tmp_path / "state", "ws.AUTH_LOG").load("hook")
    assert cursor is not None
    assert cursor.high_water == int((START + timedelta(minutes=20)).timestamp()) + 1


def test_a_sink_failing_midway_through_a_file_resumes_after_what_it_had(
    emulator: ComplianceEmulator, tmp_path: Path, files: list[str]
) -> None:
    """The receiver goes down after six requests, in the middle of the big file: the run fails
    with the batches before delivered and recorded, the cursor not past the file; the next run
    sends only the rest, so every record lands exactly once."""
    hook = FakeWebhook()
    hook.down_after = 6
    second = int((START + timedelta(minutes=10)).timestamp())
    with hook.receiver:
        config = write_config(tmp_path, emulator, hook)
        assert main(["run", "--once", "--config", str(config)]) != 0
        first = hook.ids()
        assert 0 < len(set(first) & set(files)) < BIG  # part of the file
        cursor = CursorStore(tmp_path / "state", "ws.AUTH_LOG").load("hook")
        assert cursor is not None
        assert cursor.high_water <= second  # not past the file
        assert set(first) & set(files) <= set(cursor.seen)  # what it had is recorded

        hook.down_after = None
        assert main(["run", "--once", "--config", str(config)]) == 0
    ids = hook.ids()
    assert len(ids) == len(set(ids)) == BIG + 10


def _open_in(directory: Path) -> list[str]:
    """What this process holds open in `directory` (an unnamed file shows as deleted)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor)
        if target.startswith(str(directory)):
            held.append(target)
    return held


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc (Linux)")
def test_a_big_file_is_held_on_disk_in_the_spool_directory_unnamed_until_closed(
    emulator: ComplianceEmulator, tmp_path: Path
) -> None:
    """A file over the in-memory size waits on disk in `spool_dir` (the state directory) while
    its records stream, with no name there (nothing to clean after a kill); small files never
    touch the disk; closing the source lets go of every file kept."""
    (big,) = emulator.add_files("AUTH_LOG", records_per_file=2000, record_bytes=1024)
    emulator.add_files("AUTH_LOG", records_per_file=3)
    source = make_source(emulator)
    source.spool_dir = tmp_path
    until = source.final_until(big.end_micros // 1_000_000)
    second = big.end_micros // 1_000_000
    batches = source.stream_pass(second, second + 1, "AUTH_LOG", batch=500)
    assert len(next(batches)) == 500  # the file is downloaded, verified, and being read
    assert os.listdir(tmp_path) == []  # nothing named
    assert [t.endswith("(deleted)") for t in _open_in(tmp_path)] == [True]
    assert sum(len(b) for b in batches) == 1500
    list(source.stream_pass(second + 1, until, "AUTH_LOG", batch=500))  # the small file
    assert len(_open_in(tmp_path)) == 1  # kept for a read again; the small one in memory
    source.close()
    assert _open_in(tmp_path) == []
