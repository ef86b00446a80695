"""Sources read in parts (files listed by end time): the watermark bounds a cycle, parts skip re-reads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import SourceSettings, load_config
from shipper.model.event import AuditEvent
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.windows import Found
from shipper.runtime import app
from shipper.runtime.metrics import Metrics
from shipper.source.contract import PassKey, Source
from shipper.source.quarantine import Quarantine
from tests.conftest import config_text, write_config


@dataclass
class Part:
    id: str
    end: int  # whole seconds
    events: list[str]


@dataclass
class PartedSource:
    """A source of files listed by end time, in memory: a watermark and parts, no clock."""

    files: list[Part]
    reads: list[str] = field(default_factory=list)  # file ids downloaded, in order
    skips: list[frozenset[str]] = field(default_factory=list)
    requests: int = 0
    retries: int = 0
    quarantine: Quarantine | None = None
    spool_dir: Path | None = None
    passes: tuple[PassKey, ...] = (None,)

    def final_until(self, since: int) -> int | None:
        ends = [f.end for f in self.files if f.end >= since]
        return max(ends) + 1 if ends else since

    def fetch_pass(
        self,
        start: int,
        end: int,
        which: PassKey,
        /,
        *,
        limit: int | None = None,
        organization: str | None = None,
        sharing: int = 1,
        abandon: threading.Event | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Found:
        self.skips.append(skip)
        found = Found()
        for part in self.files:
            if not start <= part.end < end or part.id in skip:
                continue
            self.reads.append(part.id)
            for event_id in part.events:
                found[event_id] = AuditEvent(
                    event_id, "x", part.end, json=orjson.dumps({"id": event_id})
                )
            found.parts[part.id] = part.end
        return found

    def stream_pass(
        self,
        start: int,
        end: int,
        which: PassKey,
        /,
        *,
        batch: int,
        organization: str | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Iterator[Found]:
        yield self.fetch_pass(start, end, which, skip=skip)

    def fetch_window(
        self, start: int, end: int, *, organization: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        return sorted(self.fetch_pass(start, end, None).values(), key=lambda e: e.sort_key)

    def api_clock_offset(self) -> float | None:
        return None

    def probe(self) -> str:
        return "in memory"

    def close(self) -> None:
        pass


NOW = int(time.time())
pytestmark = pytest.mark.usefixtures("admin_key")  # every configured secret is read at start-up


def _files() -> list[Part]:
    return [
        Part("f1", NOW - 7200, ["a", "b"]),
        Part("f2", NOW - 3600, ["c", "b"]),  # "b" repeats across files
        Part("f3", NOW - 300, ["d"]),
    ]


def _run(tmp_path: Path, source: PartedSource, sinks: str | None = None) -> None:
    text = config_text("http://127.0.0.1:9", tmp_path, start_at=NOW - 86400, sinks=sinks)
    config = load_config(write_config(tmp_path, text))

    def connect(settings: SourceSettings, metrics: Metrics | None) -> Source:
        return source

    assert exit_code_of_run(app.run(config, once=True, client_factory=connect)) == ExitCode.OK


def _cursor(tmp_path: Path, sink: str = "archive") -> Cursor:
    cursor = CursorStore(tmp_path / "state", "default").load(sink)
    assert cursor is not None
    return cursor


def _delivered(tmp_path: Path, name: str = "audit") -> list[str]:
    lines = (tmp_path / "out" / f"{name}.jsonl").read_bytes().splitlines()
    return [orjson.loads(line)["id"] for line in lines]


def test_a_cursor_never_passes_the_source_watermark(tmp_path: Path) -> None:
    """The cycle ends at the newest published file (+1 s), not at the local clock."""
    _run(tmp_path, PartedSource(_files()))
    assert _cursor(tmp_path).high_water == NOW - 300 + 1
    assert sorted(_delivered(tmp_path)) == ["a", "b", "c", "d"]


def test_a_quiet_feed_leaves_cursors_where_they_are(tmp_path: Path) -> None:
    """Nothing new published: the next run moves no cursor (a file published late still lands)."""
    _run(tmp_path, PartedSource(_files()))
    before = _cursor(tmp_path)
    _run(tmp_path, PartedSource(_files()))
    assert _cursor(tmp_path).high_water == before.high_water
    late = [*_files(), Part("late", NOW - 200, ["e"])]
    _run(tmp_path, PartedSource(late))
    assert sorted(_delivered(tmp_path)) == ["a", "b", "c", "d", "e"]


def test_parts_every_sink_holds_are_not_read_again(tmp_path: Path) -> None:
    """A file inside `lookback` that every sink received is handed back as `skip`, not downloaded."""
    _run(tmp_path, PartedSource(_files()))
    assert "f3" in _cursor(tmp_path).seen  # the part is in the cursor with the events
    again = PartedSource(_files())
    _run(tmp_path, again)
    assert again.reads == []
    assert "f3" in again.skips[0]
    assert sorted(_delivered(tmp_path)) == ["a", "b", "c", "d"]  # nothing twice


def test_a_sink_without_the_part_gets_it_read_again(tmp_path: Path) -> None:
    """A part only some sinks hold is downloaded for the others (and the holders get nothing twice)."""
    _run(tmp_path, PartedSource(_files()))
    two_sinks = (
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/out/audit.jsonl"\n'
        f'[[sinks]]\ntype = "file"\nname = "second"\npath = "{tmp_path}/out/second.jsonl"\n'
    )
    again = PartedSource(_files())
    _run(tmp_path, again, sinks=two_sinks)
    assert "f3" in again.reads
    assert sorted(_delivered(tmp_path, "second")) == ["a", "b", "c", "d"]
    assert sorted(_delivered(tmp_path)) == ["a", "b", "c", "d"]


def test_parts_enter_a_cursor_only_with_the_whole_window() -> None:
    """`advance` keeps a window's parts inside `lookback`; a part-delivered window (`record`) keeps none."""
    cursor = Cursor(high_water=1000)
    event = AuditEvent("e", "x", 990, json=b"{}")
    moved = cursor.advance([event], 1000, 100, {"old": 800, "new": 995})
    assert moved.seen == {"e": 990, "new": 995}
    assert "new" not in cursor.record([event], 100).seen
    assert "new" not in moved.advance([], 1200, 100).seen  # pruned with the events
