"""Every retry, wherever it happens, writes the same `retrying` line with the same fields."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs
from structlog.typing import EventDict

from shipper.config.settings import AuditLogSettings
from shipper.emulator import Emulator, Fault
from shipper.errors import SinkRetryableError
from shipper.pipeline.sink import SinkContext
from shipper.retry import RETRY_EVENT
from shipper.source.audit_log.client import AuditLogClient
from shipper.testing.contract.events import events
from shipper.testing.receivers.base import Receiver, Reply
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from sinks.elasticsearch.settings import ElasticsearchSettings
from sinks.elasticsearch.sink import ElasticsearchSink
from sinks.syslog.sink import SyslogSink, SyslogSinkSettings
from sinks.webhook.sink import WebhookSettings, WebhookSink
from tests.conftest import KEY

# The fields of every retry line; `source` or `sink` besides, naming the same as `component`.
RETRY_FIELDS = {"event", "log_level", "component", "attempt", "wait", "reason"}


def retry_lines(logs: list[EventDict], kind: str, name: str) -> list[EventDict]:
    """The retry lines, each checked to carry exactly the shared fields, bound to `name`."""
    lines = [entry for entry in logs if entry["event"] == RETRY_EVENT]
    assert lines, logs
    for line in lines:
        assert set(line) - {kind} == RETRY_FIELDS, line
        assert line["component"] == line[kind] == name
        assert line["log_level"] == "warning"
        assert isinstance(line["attempt"], int) and isinstance(line["reason"], str)
    assert not [e for e in logs if str(e["event"]).endswith("_retry")], "an old retry event"
    return lines


class Sleeps(list[float]):
    """An injected sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_the_source_writes_retrying_with_the_shared_fields() -> None:
    """An API 503 (emulator fault) is one `retrying` line: attempt 1, the wait slept, the reason."""
    sleeps = Sleeps()
    with Emulator(api_key=KEY, events=[]) as emu, capture_logs() as logs:
        emu.inject(Fault(kind="503"))
        settings = AuditLogSettings(base_url=emu.base_url, retry_max_attempts=3)
        source = AuditLogClient(settings, SecretStr(KEY), sleep=sleeps)
        try:
            source.page([("limit", "1")])
        finally:
            source.close()
    (line,) = retry_lines(logs, "source", settings.name)
    assert line["attempt"] == 1 and line["wait"] == pytest.approx(sleeps[0], abs=1e-3)
    assert "HTTP 503" in line["reason"]


def test_an_http_sink_writes_retrying_with_the_shared_fields(tmp_path: Path) -> None:
    """A webhook receiver answering 503 then 200 gives one `retrying` line naming the sink."""
    sleeps = Sleeps()
    with Receiver() as rx, capture_logs() as logs:
        rx.script(Reply(503, b"busy", {"retry-after": "2"}))
        settings = WebhookSettings.model_validate(
            {"type": "webhook", "name": "hook", "url": rx.url, "retry_max_attempts": 3}
        )
        sink = WebhookSink(settings, SinkContext(state_dir=tmp_path), sleep=sleeps)
        sink.open()
        try:
            assert sink.send(events(2)) == []
        finally:
            sink.close()
    (line,) = retry_lines(logs, "sink", "hook")
    assert line["attempt"] == 1 and line["wait"] == sleeps[0] >= 2.0
    assert "HTTP 503" in line["reason"]


def _refused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_syslog_writes_retrying_with_the_shared_fields() -> None:
    """A refused TCP connection is retried with one `retrying` line per wait, reason included."""
    sleeps = Sleeps()
    values: dict[str, Any] = {
        "type": "syslog", "name": "siem", "host": "127.0.0.1", "port": _refused_port(),
        "transport": "tcp", "hostname": "h.example", "timeout": 1.0, "retry_max_attempts": 3,
    }  # fmt: skip
    sink = SyslogSink(SyslogSinkSettings.model_validate(values), sleep=sleeps)
    sink.open()
    with capture_logs() as logs, pytest.raises(SinkRetryableError):
        sink.send(events(1))
    sink.close()
    lines = retry_lines(logs, "sink", "siem")
    assert [line["attempt"] for line in lines] == [1, 2]
    assert [line["wait"] for line in lines] == pytest.approx(sleeps, abs=1e-3)
    assert "cannot write to tcp://127.0.0.1" in lines[0]["reason"]


def test_elasticsearch_items_write_retrying_with_the_shared_fields(tmp_path: Path) -> None:
    """A bulk item answered 429 (the fake) is sent again after one `retrying` line."""
    sleeps = Sleeps()
    batch = events(3)
    with FakeElasticsearch() as es, capture_logs() as logs:
        es.throttle(batch[1].id, times=1)
        settings = ElasticsearchSettings.model_validate(
            {"name": "es", "url": es.url, "format": "normalized", "retry_max_attempts": 3}
        )
        sink = ElasticsearchSink(settings, SinkContext(state_dir=tmp_path), sleep=sleeps)
        sink.open()
        try:
            assert sink.send(batch) == []
        finally:
            sink.close()
    (line,) = retry_lines(logs, "sink", "es")
    assert line["attempt"] == 1 and line["wait"] == pytest.approx(sleeps[0], abs=1e-3)
    assert "1 items refused for now" in line["reason"] and "429" in line["reason"]


def test_no_module_writes_a_retry_line_under_another_name() -> None:
    """The old per-site names (api_retry, sink_retry, ...) are gone from the code."""
    root = Path(__file__).resolve().parents[2]
    old = ("api_retry", "sink_retry", "syslog_retry", "elasticsearch_items_retry")
    for folder in ("shipper", "sinks"):
        for path in (root / folder).rglob("*.py"):
            text = path.read_text()
            assert not [name for name in old if f'"{name}"' in text], path
