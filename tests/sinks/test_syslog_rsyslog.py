"""The syslog sink against a real rsyslogd: what rsyslog received and parsed, field by field."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.model.event import AuditEvent, normalize
from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.rsyslog import Record, Rsyslog, TlsFiles, rsyslogd_path
from sinks.syslog.format import BOM, header_field
from sinks.syslog.sink import SyslogSink, SyslogSinkSettings, plugin, unacked_bytes
from tests.sinks import timed

HOST = "shipper-host.example"
# Recent, whole seconds: RFC 3164 has no year, so rsyslog guesses the current one.
NOW = int(time.time()) - 3600


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    rsyslogd_path()
    base = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("shipper.client.example")
    files = {name: base / f"{name}.pem" for name in ("ca", "cert", "key", "client")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=index > 0)
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    return files


def rsyslog_with_tls(path: Path, pki: dict[str, Path], auth_mode: Any = "anon") -> Rsyslog:
    """An rsyslogd (not started; use it as a context manager) whose TLS listener uses `pki`."""
    return Rsyslog(path, tls=TlsFiles(pki["ca"], pki["cert"], pki["key"], auth_mode))


@pytest.fixture
def rsyslog(tmp_path: Path, pki: dict[str, Path]) -> Iterator[Rsyslog]:
    """A fresh rsyslogd with UDP, TCP and anonymous-client TLS listeners."""
    with rsyslog_with_tls(tmp_path / "rsyslog", pki) as server:
        yield server


class Sinks:
    """Builds opened sinks aimed at one rsyslog listener, and closes them all at teardown."""

    def __init__(self, pki: dict[str, Path]) -> None:
        self.pki = pki
        self.made: list[SyslogSink] = []

    def settings(
        self, server: Rsyslog, transport: str = "tcp", **overrides: Any
    ) -> SyslogSinkSettings:
        port = {"udp": server.udp_port, "tcp": server.tcp_port, "tls": server.tls_port}[transport]
        values: dict[str, Any] = {
            "type": "syslog", "name": "siem", "host": "127.0.0.1", "port": port,
            "transport": transport, "hostname": HOST, "retry_max_attempts": 3,
        }  # fmt: skip
        if transport == "tls":
            values |= {"ca_file": self.pki["ca"], "tls_server_name": "127.0.0.1"}
        return SyslogSinkSettings.model_validate(values | overrides)

    def __call__(
        self, server: Rsyslog, transport: str = "tcp", *, sleeps: list[float] | None = None,
        **overrides: Any,
    ) -> SyslogSink:  # fmt: skip
        settings = self.settings(server, transport, **overrides)
        sink = SyslogSink(settings, sleep=(sleeps.append if sleeps is not None else lambda _: None))
        self.made.append(sink)
        sink.open()
        return sink


@pytest.fixture
def make_sink(pki: dict[str, Path]) -> Iterator[Sinks]:
    """A factory of syslog sinks; every sink it made is closed afterwards."""
    sinks = Sinks(pki)
    yield sinks
    for sink in sinks.made:
        sink.close()


def event(
    n: int,
    *,
    event_type: str = "api_key.created",
    text: str = "value",
    note: str = "",
    at: int = NOW,
) -> AuditEvent:
    return AuditEvent.from_api(
        {
            "id": f"audit_log-{n:04d}",
            "object": "organization.audit_log",
            "type": event_type,
            "effective_at": at + n,
            "actor": {
                "type": "session",
                "session": {
                    "user": {"id": f"user-{text}", "email": text},
                    "ip_address": "203.0.113.9",
                    "user_agent": text,
                },
            },
            "project": {"id": "proj_1", "name": text},
            event_type: {"id": f"key-{text}", "data": {"scopes": [text, "all"], "note": note}},
        },
        organization="acme",
    )


def deliver(sink: Sink, events: list[AuditEvent]) -> None:
    assert list(sink.send(events)) == []
    sink.flush()


def document(ev: AuditEvent) -> Any:
    return orjson.loads(orjson.dumps(normalize(ev)))


def assert_rfc5424(record: Record, ev: AuditEvent) -> None:
    severity = 4 if ev.type.endswith(".failed") else 5
    assert (record.pri, record.facility, record.severity) == (16 * 8 + severity, 16, severity)
    assert record.timereported == ev.timestamp
    assert (record.hostname, record.app_name, record.procid) == (HOST, "shipper", str(os.getpid()))
    assert record.msgid == ev.type
    assert record.sd == {"openai@32473": {"id": ev.id, "type": ev.type, "org": "acme"}}
    assert record.msg.startswith(BOM.decode())
    assert record.body() == document(ev)


TRANSPORTS = [
    pytest.param("udp", "octet-counting", id="udp"),
    pytest.param("tcp", "octet-counting", id="tcp-octet-counting"),
    pytest.param("tcp", "lf", id="tcp-lf"),
    pytest.param("tls", "octet-counting", id="tls-octet-counting"),
    pytest.param("tls", "lf", id="tls-lf"),
]


@pytest.mark.parametrize(("transport", "framing"), TRANSPORTS)
def test_rfc5424_fields_arrive_as_sent(
    rsyslog: Rsyslog, make_sink: Sinks, transport: str, framing: str
) -> None:
    """rsyslog parses PRI, timestamp, hostname, app-name, procid, msgid, SD and the JSON body."""
    events = [
        event(1),
        event(2, event_type="login.failed"),
        event(3, event_type="project.archived"),
    ]
    sink = make_sink(rsyslog, transport, framing=framing)
    deliver(sink, events)
    sink.close()
    records = rsyslog.sync()
    assert len(records) == 3, rsyslog.diagnostics()
    expected_input = "imudp" if transport == "udp" else "imtcp"
    for record, ev in zip(sorted(records, key=lambda r: r.timereported), events, strict=True):
        assert record.inputname == expected_input
        assert_rfc5424(record, ev)


def test_rfc3164_fields_arrive_as_sent(rsyslog: Rsyslog, make_sink: Sinks) -> None:
    """RFC 3164 over TCP: PRI, `Mmm dd hh:mm:ss` time, hostname, tag and the JSON body."""
    events = [event(1), event(2, event_type="login.failed")]
    sink = make_sink(rsyslog, format="rfc3164", facility="authpriv", app_name="audit")
    deliver(sink, events)
    records = rsyslog.sync()
    assert len(records) == 2, rsyslog.diagnostics()
    for record, ev in zip(records, events, strict=True):
        severity = 4 if ev.type.endswith(".failed") else 5
        assert (record.pri, record.facility, record.severity) == (10 * 8 + severity, 10, severity)
        received = dt.datetime.fromisoformat(record.timereported)
        sent = dt.datetime.fromtimestamp(ev.effective_at, dt.UTC)
        assert received.replace(year=sent.year) == sent
        assert (record.hostname, record.app_name) == (HOST, "audit")
        assert record.body() == document(ev)


@pytest.mark.parametrize("style", ["rfc5424", "rfc3164"])
def test_a_compliance_record_lands_at_its_own_time_not_its_files_end(
    rsyslog: Rsyslog, make_sink: Sinks, style: str
) -> None:
    """The header TIMESTAMP of a compliance record is the record's own time (RFC 5424 with its
    milliseconds, RFC 3164 to the second), not the end time of its log file; an audit event's
    stays its `effective_at`."""
    compliance, audit = timed.record(NOW), event(1)
    deliver(make_sink(rsyslog, format=style), [compliance, audit])
    records = rsyslog.sync()
    assert len(records) == 2, rsyslog.diagnostics()
    by_id = {r.body().get("event_id") or r.body()["id"]: r for r in records}
    own = dt.datetime.fromtimestamp(timed.own_time_ms(NOW) / 1000, dt.UTC)
    received = dt.datetime.fromisoformat(by_id[compliance.id].timereported)
    audit_received = dt.datetime.fromisoformat(by_id[audit.id].timereported)
    if style == "rfc3164":  # no year and no fraction: compare what the format can carry
        own = own.replace(microsecond=0)
        received = received.replace(year=own.year)
        audit_received = audit_received.replace(year=own.year)
    assert received == own != dt.datetime.fromtimestamp(NOW, dt.UTC)
    assert audit_received == dt.datetime.fromtimestamp(audit.effective_at, dt.UTC)


def controls_as_text(value: str) -> str:
    """What the sink writes for control characters in structured data: the text `\\uXXXX`."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", value)


HOSTILE = 'a\nb\r\nc\x00d]e"f|g=h\\i\tj\x1b[0m😀𝄞\u2028<13>1 - - forged - - - x\n'


def hostile_events(count: int, long_text: int) -> list[AuditEvent]:
    events = [event(n, event_type=f"x.{HOSTILE}", text=HOSTILE * (n + 1)) for n in range(count)]
    events.append(event(count, text=HOSTILE, note=HOSTILE + "z" * long_text))
    return events


@pytest.mark.parametrize(
    ("transport", "framing", "long_text"),
    [
        pytest.param("tcp", "octet-counting", 150_000, id="tcp-octet-counting"),
        pytest.param("tcp", "lf", 150_000, id="tcp-lf"),
        pytest.param("udp", "lf", 30_000, id="udp"),
    ],
)
def test_hostile_content_arrives_as_exactly_one_record_per_event(
    rsyslog: Rsyslog, make_sink: Sinks, transport: str, framing: str, long_text: int
) -> None:
    """Newlines, NUL, `]`, `"`, `|`, `=`, long and non-BMP text never split or merge messages."""
    events = hostile_events(5, long_text)
    sink = make_sink(rsyslog, transport, framing=framing, udp_max_bytes=65507)
    deliver(sink, events)
    records = rsyslog.sync()
    assert len(records) == len(events), rsyslog.diagnostics()
    assert sorted(r.body()["id"] for r in records) == [e.id for e in events]
    by_id = {r.body()["id"]: r for r in records}
    for ev in events:
        record = by_id[ev.id]
        assert record.body() == document(ev)
        assert (record.hostname, record.app_name) == (HOST, "shipper")
        assert record.msgid == header_field(ev.type, 32)
        assert record.sd_params("openai@32473") == {
            "id": ev.id, "type": controls_as_text(ev.type), "org": "acme",
        }  # fmt: skip


def test_udp_event_over_the_limit_is_rejected_not_truncated(
    rsyslog: Rsyslog, make_sink: Sinks
) -> None:
    """An event larger than udp_max_bytes comes back as a Rejection; rsyslog never sees a part."""
    small, big = event(1), event(2, text="y" * 5000)
    sink = make_sink(rsyslog, "udp", udp_max_bytes=1000)
    rejections = sink.send([small, big])
    sink.flush()
    assert [r.event for r in rejections] == [big]
    assert "udp_max_bytes = 1000" in rejections[0].reason
    records = rsyslog.sync()
    assert [r.body()["id"] for r in records] == [small.id]


def test_an_event_that_cannot_be_rendered_is_rejected_and_the_rest_delivered(
    rsyslog: Rsyslog, make_sink: Sinks
) -> None:
    """An effective_at no calendar can hold becomes a Rejection; its neighbours arrive."""
    absurd = event(2, at=10**15)
    sink = make_sink(rsyslog)
    rejections = sink.send([event(1), absurd, event(3)])
    sink.flush()
    assert [(r.event, "cannot render" in r.reason) for r in rejections] == [(absurd, True)]
    assert [r.body()["id"] for r in rsyslog.sync()] == [event(1).id, event(3).id]


def test_tcp_reconnects_after_rsyslog_restarts(rsyslog: Rsyslog, make_sink: Sinks) -> None:
    """After the receiver restarts, the next batch goes over a new connection and arrives."""
    sink = make_sink(rsyslog)
    deliver(sink, [event(1)])
    rsyslog.wait_for(1)
    rsyslog.restart()
    deliver(sink, [event(2), event(3)])
    records = rsyslog.sync()
    assert [r.body()["id"] for r in records] == [event(n).id for n in (1, 2, 3)]


def test_tls_reconnects_after_rsyslog_restarts(rsyslog: Rsyslog, make_sink: Sinks) -> None:
    """The same holds for TLS: a closed session is noticed and a new handshake made."""
    sink = make_sink(rsyslog, "tls")
    deliver(sink, [event(1)])
    rsyslog.wait_for(1)
    rsyslog.restart()
    deliver(sink, [event(2)])
    assert [r.body()["id"] for r in rsyslog.sync()] == [event(1).id, event(2).id]


def test_flush_fails_when_the_receiver_closed_the_connection(
    rsyslog: Rsyslog, make_sink: Sinks
) -> None:
    """A connection found closed at flush is a retryable failure (the window is sent again)."""
    sink = make_sink(rsyslog)
    assert list(sink.send([event(1)])) == []
    rsyslog.stop()
    with pytest.raises(SinkRetryableError, match="sent again"):
        sink.flush()


def test_receiver_down_raises_retryable_after_bounded_retries(
    rsyslog: Rsyslog, make_sink: Sinks
) -> None:
    """Connection refused is retried retry_max_attempts times, then SinkRetryableError."""
    sleeps: list[float] = []
    sink = make_sink(rsyslog, retry_max_attempts=4, sleeps=sleeps)
    rsyslog.stop()
    with pytest.raises(SinkRetryableError, match="connection refused") as caught:
        sink.send([event(1)])
    assert len(sleeps) == 3
    assert "siem" in str(caught.value) and f":{rsyslog.tcp_port}" in str(caught.value)


def test_untrusted_certificate_is_fatal_without_retries(rsyslog: Rsyslog, make_sink: Sinks) -> None:
    """A receiver certificate that does not verify is a SinkFatalError that names the fix."""
    sleeps: list[float] = []
    sink = make_sink(rsyslog, "tls", ca_file=None, sleeps=sleeps)
    with pytest.raises(SinkFatalError, match="ca_file"):
        sink.send([event(1)])
    assert sleeps == []


def test_mutual_tls_with_certvalid_rsyslog(
    tmp_path: Path, pki: dict[str, Path], make_sink: Sinks
) -> None:
    """rsyslog in x509/certvalid mode drops a client without a certificate, accepts one with."""
    with rsyslog_with_tls(tmp_path / "rsyslog", pki, "x509/certvalid") as server:
        anonymous = make_sink(server, "tls")
        assert list(anonymous.send([event(1)])) == []
        server.wait_for_diagnostic("did not provide a certificate")
        with pytest.raises(SinkRetryableError, match="set cert_file and key_file"):
            anonymous.flush()
        sink = make_sink(server, "tls", cert_file=pki["client"])
        deliver(sink, [event(2)])
        (record,) = server.sync()
        assert_rfc5424(record, event(2))


def test_probe_reports_the_handshake(rsyslog: Rsyslog, make_sink: Sinks) -> None:
    """probe() connects (TLS: handshakes) and closes; for UDP it can only resolve the host."""
    assert "connected" in make_sink(rsyslog, "tcp").probe()
    assert "TLSv1" in make_sink(rsyslog, "tls").probe()
    assert "no handshake possible" in make_sink(rsyslog, "udp").probe()
    down = make_sink(rsyslog, "tcp")
    rsyslog.stop()
    with pytest.raises(SinkRetryableError, match="connection refused"):
        down.probe()
    assert rsyslog.records() == []


@pytest.mark.skipif(
    importlib.util.find_spec("shipper.render.cef") is None,
    reason="the CEF renderer (shipper.render.cef) is not written yet",
)
def test_cef_body_when_the_cef_renderer_exists(rsyslog: Rsyslog, make_sink: Sinks) -> None:
    """body = "cef" sends one CEF line per event, even over LF framing with hostile content."""
    events = hostile_events(3, 100)
    deliver(make_sink(rsyslog, framing="lf", body="cef"), events)
    records = rsyslog.sync()
    assert len(records) == len(events)
    assert all(r.msg.removeprefix("\ufeff").startswith("CEF:0|OpenAI|") for r in records)
    assert sorted(r.sd["openai@32473"]["id"] for r in records) == [e.id for e in events]


def test_plugin_creates_a_working_sink(rsyslog: Rsyslog, make_sink: Sinks, tmp_path: Path) -> None:
    """The entry-point object validates settings and builds a sink that satisfies the protocol."""
    settings = plugin.settings_model.model_validate(
        {"type": "syslog", "name": "siem", "host": "127.0.0.1", "port": rsyslog.tcp_port}
    )
    sink = plugin.create(settings, SinkContext(state_dir=tmp_path))
    assert isinstance(sink, Sink)
    sink.open()
    deliver(sink, [event(1)])
    sink.close()
    sink.close()
    assert [r.body()["id"] for r in rsyslog.sync()] == [event(1).id]


def test_flush_waits_for_the_receiving_hosts_acknowledgement() -> None:
    """flush() fails (retryable) while bytes remain unacknowledged by a stalled receiver."""
    with socket.socket() as server:
        if unacked_bytes(server) is None:
            pytest.skip("this platform cannot tell unacknowledged bytes (SIOCOUTQ)")
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window, never read
        server.bind(("127.0.0.1", 0))
        server.listen()
        settings = SyslogSinkSettings(
            type="syslog", name="siem", host="127.0.0.1", port=server.getsockname()[1],
            timeout=0.3, batch_max_bytes=10_000_000,
        )  # fmt: skip
        sink = SyslogSink(settings, sleep=lambda _: None)
        sink.open()
        try:
            assert list(sink.send([event(n, note="n" * 2000) for n in range(100)])) == []
            with pytest.raises(SinkRetryableError, match="not acknowledged"):
                sink.flush()
        finally:
            sink.close()


def test_missing_rsyslogd_skips_unless_required(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rsyslogd the tests skip, but fail when SHIPPER_REQUIRE_RSYSLOG=1 (CI)."""
    monkeypatch.setattr(shutil, "which", lambda *_, **__: None)
    monkeypatch.delenv("SHIPPER_REQUIRE_RSYSLOG", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        rsyslogd_path()
    monkeypatch.setenv("SHIPPER_REQUIRE_RSYSLOG", "1")
    with pytest.raises(pytest.fail.Exception, match="SHIPPER_REQUIRE_RSYSLOG=1"):
        rsyslogd_path()
