"""The example sink passes the contract suite shipped with shipper (`pip install 'shipper[testing]'`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipper_example_sink.sink import ExampleSettings, plugin

from shipper.sink_api import Sink, SinkContext
from shipper.testing.contract.suite import SinkContractSuite


class ExampleHarness:
    """The example sink's receiver is its file: what the file holds is what was received."""

    sink_type = "example"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.path = tmp_path / "out" / "events.jsonl"

    def make_sink(self, **overrides: Any) -> Sink:
        settings = ExampleSettings(type="example", name="example", path=str(self.path), **overrides)
        return plugin.create(settings, SinkContext(state_dir=self.tmp_path / "state"))

    def received_ids(self) -> list[str]:
        if not self.path.exists():
            return []
        return [json.loads(line)["id"] for line in self.path.read_bytes().splitlines()]

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
        """A file has no receiver process to restart."""

    def reject_permanently(self, event_id: str) -> bool:
        return False  # a file refuses nothing


class TestExampleSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> contextlib.AbstractContextManager[ExampleHarness]:
        return contextlib.nullcontext(ExampleHarness(tmp_path))
