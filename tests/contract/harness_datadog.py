"""Contract harness for the Datadog sink: a fake Datadog Logs intake on a real loopback port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.datadog import FakeDatadog
from sinks.datadog.sink import DatadogSettings, DatadogSink

API_KEY = "contract-dd-api-key-0123456789"
# The contract's events date from 2024; the harness's sink sees them as an hour old.
EVENT_TIME = 1_720_000_000


class DatadogHarness:
    sink_type = "datadog"

    def __init__(self, fake: FakeDatadog, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.key_file = tmp_path / "dd-api-key"
        self.key_file.write_text(API_KEY + "\n", encoding="utf-8")

    def make_sink(self, **overrides: Any) -> Sink:
        values: dict[str, Any] = {
            "type": "datadog",
            "name": "datadog",
            "url": self.fake.receiver.url,
            "api_key_file": str(self.key_file),
        }
        settings = DatadogSettings.model_validate({**values, **overrides})
        return DatadogSink(
            settings,
            SinkContext(state_dir=self.tmp_path),
            sleep=lambda _: None,
            clock=lambda: EVENT_TIME + 3600.0,
        )

    def received_ids(self) -> list[str]:
        return self.fake.ids()

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.fake.receiver.down()

    def restart_receiver(self) -> None:
        self.fake.receiver.restart()

    def reject_permanently(self, event_id: str) -> bool:
        self.fake.reject_ids.add(event_id)
        return True


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[DatadogHarness]:
    fake = FakeDatadog({API_KEY}, clock=lambda: EVENT_TIME + 3600.0)
    with fake.receiver:
        yield DatadogHarness(fake, tmp_path)
