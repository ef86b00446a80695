"""Contract harness for the Sumo Logic sink: a fake HTTP Logs source on a real loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.sumologic import FakeSumo
from sinks.sumologic.sink import SumoLogicSettings, SumoLogicSink


class SumoLogicHarness:
    sink_type = "sumologic"

    def __init__(self, fake: FakeSumo, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.url_file = tmp_path / "sumo-url"
        self.url_file.write_text(fake.url + "\n", encoding="utf-8")

    def make_sink(self, **overrides: Any) -> Sink:
        values: dict[str, Any] = {
            "type": "sumologic",
            "name": "sumo",
            "url_file": str(self.url_file),
            "source_category": "security/openai/audit",
        }
        settings = SumoLogicSettings.model_validate({**values, **overrides})
        return SumoLogicSink(settings, SinkContext(state_dir=self.tmp_path), sleep=lambda _: None)

    def received_ids(self) -> list[str]:
        return self.fake.ids()

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.fake.receiver.down()

    def restart_receiver(self) -> None:
        self.fake.receiver.restart()

    def reject_permanently(self, event_id: str) -> bool:
        return False  # an HTTP source takes any UTF-8 line: it has no way to refuse one event


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[SumoLogicHarness]:
    fake = FakeSumo()
    with fake.receiver:
        yield SumoLogicHarness(fake, tmp_path)
