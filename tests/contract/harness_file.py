"""Contract harness for the file sink: the 'receiver' is the file itself."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from shipper.pipeline.sink import Sink, SinkContext
from sinks.file.sink import FileSettings, plugin


class FileHarness:
    sink_type = "file"

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "out"
        self.path = self.dir / "audit.jsonl"
        self.tmp_path = tmp_path

    def make_sink(self, **overrides: Any) -> Sink:
        settings = FileSettings(type="file", name="file", path=str(self.path), **overrides)
        return plugin.create(settings, SinkContext(state_dir=self.tmp_path / "state"))

    def received_ids(self) -> list[str]:
        if not self.path.exists():
            return []
        return [orjson.loads(line)["id"] for line in self.path.read_bytes().splitlines()]

    @contextlib.contextmanager
    def receiver_down(self) -> Iterator[None]:
        # A directory where the file should be: it cannot be opened for writing, even by root.
        aside = self.path.with_suffix(".aside")
        if self.path.exists():
            self.path.rename(aside)
        self.path.mkdir(parents=True)
        try:
            yield
        finally:
            self.path.rmdir()
            if aside.exists():
                aside.rename(self.path)

    def restart_receiver(self) -> None:
        """A file has no receiver process; rotating it away is the closest analogue."""

    def reject_permanently(self, event_id: str) -> bool:
        return False


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[FileHarness]:
    yield FileHarness(tmp_path)
