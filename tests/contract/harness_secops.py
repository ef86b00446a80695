"""Contract harness for the Google SecOps sink: the fake Chronicle API and its token endpoint.

The service-account key is generated per harness (a throwaway RSA key) and its `token_uri`
points at the fake, so the real google-auth library signs and exchanges the JWT.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.secops import FakeSecOps
from sinks.secops.settings import SecOpsSettings
from sinks.secops.sink import SecOpsSink


class SecOpsHarness:
    sink_type = "secops"

    def __init__(self, fake: FakeSecOps, tmp_path: Path) -> None:
        self.fake = fake
        self.tmp_path = tmp_path
        self.key_file = tmp_path / "secops-key.json"
        self.key_file.write_text(json.dumps(fake.new_account()), encoding="utf-8")

    def settings(self, **overrides: Any) -> SecOpsSettings:
        values: dict[str, Any] = {
            "type": "secops",
            "name": "secops",
            "url": self.fake.url,
            "project": self.fake.project,
            "region": self.fake.location,
            "instance": self.fake.instance,
            "credentials_file": str(self.key_file),
        }
        return SecOpsSettings.model_validate({**values, **overrides})

    def make_sink(self, **overrides: Any) -> Sink:
        context = SinkContext(state_dir=self.tmp_path)
        return SecOpsSink(self.settings(**overrides), context, sleep=lambda _: None)

    def received_ids(self) -> list[str]:
        return self.fake.event_ids()

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.fake.receiver.down()

    def restart_receiver(self) -> None:
        self.fake.receiver.restart()

    def reject_permanently(self, event_id: str) -> bool:
        self.fake.reject(event_id)
        return True


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[SecOpsHarness]:
    with FakeSecOps() as fake:
        yield SecOpsHarness(fake, tmp_path)
