"""The file sink: durable appends, torn-tail repair, daily files by event time."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

import sinks.file.sink as file_sink
from shipper.errors import SinkRetryableError
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import SinkContext
from shipper.runtime import signals
from shipper.sink_api import open_append
from shipper.testing.contract.events import api_event, events
from sinks.file.sink import FileSettings, FileSink, plugin, repair_torn_tail


def make(tmp_path: Path, path: str, fmt: str = "raw") -> FileSink:
    settings = FileSettings(type="file", name="f", path=path, format=fmt)
    return plugin.create(settings, SinkContext(state_dir=tmp_path))


def test_torn_last_line_is_cut_on_open(tmp_path: Path) -> None:
    """A partial last line left by a crash is removed before the next append; whole lines stay."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"id":"a"}\n{"id":"b"}\n{"id":"c", "type": "tor')
    sink = make(tmp_path, str(path))
    sink.open()
    sink.send(events(1))
    sink.flush()
    sink.close()
    ids = [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]
    assert ids == ["a", "b", events(1)[0].id]


def test_repair_of_a_file_without_any_newline(tmp_path: Path) -> None:
    """A file that is only a torn line becomes empty."""
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"id":"half')
    fd = os.open(path, os.O_RDWR)
    try:
        assert repair_torn_tail(fd, path) == 11
    finally:
        os.close(fd)
    assert path.read_bytes() == b""


def test_daily_files_follow_event_time(tmp_path: Path) -> None:
    """strftime placeholders are filled from each event's effective_at (UTC), not the clock."""
    sink = make(tmp_path, str(tmp_path / "audit-%Y-%m-%d.jsonl"))
    batch = events(3)
    sink.open()
    sink.send(batch)
    sink.flush()
    sink.close()
    assert [p.name for p in tmp_path.glob("audit-*.jsonl")] == ["audit-2024-07-03.jsonl"]


def test_normalized_lines_are_one_json_object_each(tmp_path: Path) -> None:
    """Each event becomes exactly one line holding the normalized document."""
    path = tmp_path / "n.jsonl"
    sink = make(tmp_path, str(path), fmt="normalized")
    sink.open()
    sink.send(events(4))
    sink.flush()
    sink.close()
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [d["id"] for d in docs] == [e.id for e in events(4)]
    assert docs[0]["outcome"] == "failure" and docs[1]["outcome"] == "success"
    assert os.stat(path).st_mode & 0o777 == 0o600


def ids_in(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def cycle(sink: FileSink, batch: list[AuditEvent]) -> None:
    """One follow-mode window: send, then the flush that acknowledges it."""
    sink.send(batch)
    sink.flush()


def test_after_a_rename_between_cycles_new_events_go_to_a_new_file_at_the_path(
    tmp_path: Path,
) -> None:
    """logrotate without copytruncate renames the file; the next cycle writes a new one at `path`."""
    path = tmp_path / "audit.jsonl"
    sink = make(tmp_path, str(path))
    sink.open()
    first, second = events(3), events(2, start=3)
    cycle(sink, first)
    path.rename(tmp_path / "audit.jsonl.1")
    cycle(sink, second)
    sink.close()
    assert ids_in(tmp_path / "audit.jsonl.1") == [e.id for e in first]
    assert ids_in(path) == [e.id for e in second]


def test_after_an_unlink_between_cycles_new_events_go_to_a_new_file_at_the_path(
    tmp_path: Path,
) -> None:
    """A deleted output file is recreated at `path`: events never vanish into an unlinked inode."""
    path = tmp_path / "audit.jsonl"
    sink = make(tmp_path, str(path))
    sink.open()
    cycle(sink, events(3))
    path.unlink()
    second = events(2, start=3)
    cycle(sink, second)
    sink.close()
    assert ids_in(path) == [e.id for e in second]


def test_events_in_a_file_deleted_before_their_flush_are_not_acknowledged(tmp_path: Path) -> None:
    """Sent, then the file is deleted before fsync: flush fails (re-delivery), never a silent gap."""
    path = tmp_path / "audit.jsonl"
    sink = make(tmp_path, str(path))
    sink.open()
    batch = events(3)
    sink.send(batch)
    path.unlink()
    with pytest.raises(SinkRetryableError, match="deleted"):
        sink.flush()
    cycle(sink, batch)  # the next cycle re-delivers the window
    sink.close()
    assert ids_in(path) == [e.id for e in batch]


def test_a_reopen_request_reopens_every_file_before_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP (nginx/rsyslog convention) makes the sink close and reopen its files."""
    opened: list[Path] = []

    def spy(path: Path) -> int:
        opened.append(path)
        return open_append(path)

    monkeypatch.setattr(file_sink, "open_append", spy)
    path = tmp_path / "audit.jsonl"
    sink = make(tmp_path, str(path))
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        signals.install_reopen_handler()
        sink.open()
        cycle(sink, events(2))
        assert opened == [path]
        os.kill(os.getpid(), signal.SIGHUP)
        cycle(sink, events(2, start=2))
        assert opened == [path, path]
        cycle(sink, events(2, start=4))
        assert opened == [path, path]  # once per request, not per write
    finally:
        signal.signal(signal.SIGHUP, previous)
        sink.close()
    assert ids_in(path) == [e.id for e in events(6)]


@pytest.fixture
def fsynced_whole(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], bool]:
    """Whether a file's last fsync (spied on) saw it at its current size: all of it durable."""
    synced: dict[int, int] = {}  # inode -> size when last fsync'd
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        real_fsync(fd)
        stat = os.fstat(fd)
        synced[stat.st_ino] = stat.st_size

    monkeypatch.setattr(os, "fsync", spy)
    return lambda path: synced.get(path.stat().st_ino) == path.stat().st_size


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_an_hourly_template_over_weeks_keeps_few_files_open_and_every_event_durable(
    tmp_path: Path, fsynced_whole: Callable[[Path], bool]
) -> None:
    """One window spanning 3 weeks of hourly files stays under MAX_OPEN_FILES descriptors, and
    every file is fsync'd at its final size by the time flush returns."""
    hours = 21 * 24
    batch = [
        AuditEvent.from_api(api_event(i, t=1_720_000_000 + i * 3600 - i)) for i in range(hours)
    ]
    sink = make(tmp_path, str(tmp_path / "out" / "audit-%Y-%m-%dT%H.jsonl"))
    sink.open()
    baseline = open_fds()
    most = 0
    for start in range(0, hours, 24):  # one day per send, all in one window
        sink.send(batch[start : start + 24])
        most = max(most, open_fds() - baseline)
    sink.flush()
    files = sorted((tmp_path / "out").glob("audit-*.jsonl"))
    assert len(files) == hours
    assert most <= file_sink.MAX_OPEN_FILES
    assert all(fsynced_whole(f) for f in files)
    sink.close()
    assert sorted(i for f in files for i in ids_in(f)) == sorted(e.id for e in batch)


def test_a_rename_inside_a_window_leaves_both_parts_fsynced_by_flush(
    tmp_path: Path, fsynced_whole: Callable[[Path], bool]
) -> None:
    """Rotated between two sends of one window: the renamed file is fsync'd before it is closed,
    the new one at flush, so the acknowledgement covers both."""
    path, rotated = tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.1"
    sink = make(tmp_path, str(path))
    sink.open()
    sink.send(events(3))
    path.rename(rotated)
    sink.send(events(2, start=3))
    sink.flush()
    sink.close()
    assert ids_in(rotated) + ids_in(path) == [e.id for e in events(5)]
    assert fsynced_whole(rotated) and fsynced_whole(path)
