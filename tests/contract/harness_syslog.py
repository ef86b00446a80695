"""Contract harness for the syslog sink: TCP (octet counting) to a real rsyslogd on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink
from shipper.testing.receivers.rsyslog import Record, Rsyslog
from sinks.syslog.sink import SyslogSink, SyslogSinkSettings


def _event_id(record: Record) -> str:
    """The id from the JSON body (authoritative), else from the structured data rsyslog parsed."""
    try:
        body = record.body()
    except ValueError:
        body = None
    found = body.get("id") if isinstance(body, dict) else None
    if isinstance(found, str):
        return found
    return next(iter(record.sd.values()), {}).get("id", "")


class SyslogHarness:
    sink_type = "syslog"

    def __init__(self, server: Rsyslog) -> None:
        self.server = server

    def make_sink(self, **overrides: Any) -> Sink:
        settings = SyslogSinkSettings.model_validate(
            {
                "type": "syslog",
                "name": "contract-syslog",
                "host": "127.0.0.1",
                "port": self.server.tcp_port,
                "transport": "tcp",
                "retry_max_attempts": 3,
                "retry_max_time": 10.0,
            }
            | overrides
        )
        return SyslogSink(settings, sleep=lambda _: None)

    def received_ids(self) -> list[str]:
        """Waits until rsyslog has read and written everything queued for it (see Rsyslog.sync)."""
        if not self.server.running:
            return [_event_id(r) for r in self.server.records()]
        return [_event_id(r) for r in self.server.sync()]

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.server.down()

    def restart_receiver(self) -> None:
        self.server.restart()

    def reject_permanently(self, event_id: str) -> bool:
        return False  # syslog has no way to refuse one message


@contextmanager
def make_harness(tmp_path: Path) -> Iterator[SyslogHarness]:
    with Rsyslog(tmp_path / "rsyslog") as server:
        yield SyslogHarness(server)


__all__ = ["SyslogHarness", "make_harness"]
