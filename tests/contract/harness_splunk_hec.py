"""Contract harness for the Splunk HEC sink: a fake HEC with indexer acknowledgement enabled."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from sinks.splunk_hec.sink import SplunkHecSettings, SplunkHecSink

TOKEN = "contract-hec-token-0123"


class SplunkHecHarness:
    sink_type = "splunk_hec"

    def __init__(self, fake: FakeHec, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.token_file = tmp_path / "hec-token"
        self.token_file.write_text(TOKEN + "\n", encoding="utf-8")

    def make_sink(self, **overrides: Any) -> Sink:
        values: dict[str, Any] = {
            "type": "splunk_hec",
            "name": "splunk",
            "url": self.fake.receiver.url,
        }
        values |= {"token_file": str(self.token_file), "indexer_ack": True, "compression": "gzip"}
        settings = SplunkHecSettings.model_validate({**values, **overrides})
        return SplunkHecSink(settings, SinkContext(state_dir=self.tmp_path), sleep=lambda _: None)

    def received_ids(self) -> list[str]:
        return self.fake.event_ids()

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.fake.receiver.down()

    def restart_receiver(self) -> None:
        self.fake.receiver.restart()

    def reject_permanently(self, event_id: str) -> bool:
        self.fake.reject_ids.add(event_id)
        return True


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[SplunkHecHarness]:
    fake = FakeHec({TOKEN: Token(ack=True)})
    with fake.receiver:
        yield SplunkHecHarness(fake, tmp_path)
