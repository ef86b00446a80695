"""The file sink: durable appends, torn-tail repair, daily files by event time."""

from __future__ import annotations

import os
from pathlib import Path

import orjson

from shipper.sink import SinkContext
from sinks.file import FileSettings, plugin, repair_torn_tail
from tests.contract.events import events


def make(tmp_path: Path, path: str, fmt: str = "raw"):
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
