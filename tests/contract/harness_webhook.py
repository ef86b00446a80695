"""Contract harness for the webhook sink: a signature-verifying receiver on a real loopback port."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.webhook import FakeWebhook
from sinks.webhook.sink import WebhookSettings, WebhookSink

SECRET = "whsec_" + base64.b64encode(b"contract-harness-key-0123456789").decode()


class WebhookHarness:
    sink_type = "webhook"

    def __init__(self, fake: FakeWebhook, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.secret_file = tmp_path / "webhook-secret"
        self.secret_file.write_text(SECRET + "\n", encoding="utf-8")

    def make_sink(self, **overrides: Any) -> Sink:
        values: dict[str, Any] = {
            "type": "webhook",
            "name": "hook",
            "url": self.fake.receiver.url + "/in",
        }
        values |= {"secret_file": str(self.secret_file), "compression": "gzip"}
        settings = WebhookSettings.model_validate({**values, **overrides})
        return WebhookSink(settings, SinkContext(state_dir=self.tmp_path), sleep=lambda _: None)

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
def make_harness(tmp_path: Path) -> Iterator[WebhookHarness]:
    fake = FakeWebhook(secret=SECRET)
    with fake.receiver:
        yield WebhookHarness(fake, tmp_path)
