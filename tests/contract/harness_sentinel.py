"""Contract harness for the Sentinel sink: fake Entra ID and Logs Ingestion API on loopback TLS.

The sink signs in with the real azure-identity library (a client secret) against the fake
token endpoint, trusting the fake's test CA through `ca_file`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.sentinel import CLIENT_ID, DCR_ID, TENANT, FakeSentinel, loopback_tls
from sinks.sentinel.settings import SentinelSettings
from sinks.sentinel.sink import SentinelSink

SECRET = "contract-client-secret-0123456789~SECRET"
SECRET_ENV = "SHIPPER_TEST_SENTINEL_SECRET"


def settings_for(fake: FakeSentinel, ca_file: Path, **overrides: Any) -> SentinelSettings:
    """Settings that reach `fake` (secret read from the file next to the CA)."""
    secret_file = ca_file.parent / "sentinel-secret"
    if not secret_file.exists():
        secret_file.write_text(SECRET + "\n", encoding="utf-8")
    values: dict[str, Any] = {
        "type": "sentinel",
        "name": "sentinel",
        "url": fake.endpoint,
        "dcr_immutable_id": DCR_ID,
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret_file": str(secret_file),
        "authority_host": fake.authority,
        "ca_file": str(ca_file),
    }
    return SentinelSettings.model_validate({**values, **overrides})


class SentinelHarness:
    sink_type = "sentinel"

    def __init__(self, fake: FakeSentinel, ca_file: Path, tmp_path: Path) -> None:
        self.fake = fake
        self.ca_file = ca_file
        self.tmp_path = tmp_path

    def make_sink(self, **overrides: Any) -> Sink:
        settings = settings_for(self.fake, self.ca_file, **overrides)
        return SentinelSink(settings, SinkContext(state_dir=self.tmp_path), sleep=lambda _: None)

    def received_ids(self) -> list[str]:
        return self.fake.record_ids()

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.fake.ingestion.down()

    def restart_receiver(self) -> None:
        self.fake.ingestion.restart()

    def reject_permanently(self, event_id: str) -> bool:
        self.fake.reject_ids.add(event_id)
        return True


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[SentinelHarness]:
    server_context, ca_file = loopback_tls(tmp_path)
    with FakeSentinel(server_context, client_secret=SECRET) as fake:
        yield SentinelHarness(fake, ca_file, tmp_path)
