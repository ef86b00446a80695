"""The Splunk HEC sink against a real local fake HEC that answers as Splunk documents."""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from shipper.emulator.events import HOSTILE_STRINGS
from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.model.event import AuditEvent, normalize
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from sinks.splunk_hec.sink import SplunkHecSettings, SplunkHecSink, plugin
from tests.sinks import timed

TOKEN = "good-token-0123"
ACK_TOKEN = "ack-token-4567"


def make_event(i: int, **extra: Any) -> AuditEvent:
    raw = {
        "id": f"audit_log-{i:05d}",
        "object": "organization.audit_log",
        "type": "project.created",
        "effective_at": 1_700_000_000 + i,
        "actor": {"type": "api_key", "api_key": {"id": "key_1", "type": "user"}},
        "project.created": {"id": f"proj_{i}", "data": {"name": f"p{i}", "title": "t"}},
        **extra,
    }
    return AuditEvent.from_api(raw, organization="acme")


def events(n: int, start: int = 0) -> list[AuditEvent]:
    return [make_event(i) for i in range(start, start + n)]


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def hec() -> Iterator[FakeHec]:
    fake = FakeHec(
        {TOKEN: Token(), ACK_TOKEN: Token(ack=True), "disabled-tok": Token(disabled=True)}
    )
    with fake.receiver:
        yield fake


@pytest.fixture
def ft() -> FakeTime:
    return FakeTime()


_open_sinks: list[SplunkHecSink] = []


@pytest.fixture(autouse=True)
def _close_sinks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HEC_TOKEN", TOKEN)
    monkeypatch.setenv("HEC_ACK_TOKEN", ACK_TOKEN)
    yield
    while _open_sinks:
        _open_sinks.pop().close()


def settings(url: str, **overrides: Any) -> SplunkHecSettings:
    values: dict[str, Any] = {"type": "splunk_hec", "name": "splunk", "url": url}
    values |= {"token_env": "HEC_TOKEN", "retry_max_attempts": 4}
    return SplunkHecSettings.model_validate({**values, **overrides})


def sink_for(fake: FakeHec, ft: FakeTime | None = None, **overrides: Any) -> SplunkHecSink:
    ft = ft or FakeTime()
    sink = SplunkHecSink(settings(fake.receiver.url, **overrides), sleep=ft.sleep, clock=ft.clock)
    _open_sinks.append(sink)
    return sink


def ack_sink(fake: FakeHec, ft: FakeTime, **overrides: Any) -> SplunkHecSink:
    values = {"token_env": "HEC_ACK_TOKEN", "indexer_ack": True, "ack_timeout": 30, **overrides}
    return sink_for(fake, ft, **values)


def event_requests(fake: FakeHec) -> list[Any]:
    return fake.receiver.requests_to("/services/collector/event")


# -- content --------------------------------------------------------------------------------


def test_envelope_field_by_field(hec: FakeHec) -> None:
    """Each event arrives as one HEC object: time, host, source, sourcetype, index, event, fields."""
    hec.indexes = {"audit"}
    batch = events(3)
    assert sink_for(hec, index="audit", host="shipper-1").send(batch) == []
    assert hec.events == [
        {
            "time": e.effective_at,
            "sourcetype": "openai:audit",
            "source": "openai:audit_log",
            "host": "shipper-1",
            "index": "audit",
            "event": e.raw,
            "fields": {"event_type": "project.created", "organization": "acme"},
        }
        for e in batch
    ]
    request = event_requests(hec)[0]
    assert request.headers["authorization"] == f"Splunk {TOKEN}"
    uuid.UUID(request.headers["x-splunk-request-channel"])


def test_normalized_format_and_optional_keys_left_out(hec: FakeHec) -> None:
    """format = normalized puts the normalized document under event; unset host/index are omitted."""
    batch = events(2)
    sink_for(hec, format="normalized", indexed_fields=False, sourcetype="oa", source="s").send(
        batch
    )
    assert hec.events == [
        {
            "time": e.effective_at,
            "sourcetype": "oa",
            "source": "s",
            "event": json.loads(json.dumps(normalize(e))),
        }
        for e in batch
    ]


def test_a_compliance_record_lands_at_its_own_time_not_its_files_end(hec: FakeHec) -> None:
    """HEC `time` of a compliance record is the record's own `timestamp` (seconds, milliseconds as
    the fraction), not the end time of its log file; an audit event's stays its `effective_at`,
    a whole number as before."""
    file_end = 1_784_592_000
    compliance = timed.record(file_end)
    audit = make_event(1)
    assert sink_for(hec).send([compliance, audit]) == []
    record_time, audit_time = (e["time"] for e in hec.events)
    assert record_time == timed.own_time_ms(file_end) / 1000 == 1_784_591_245.25
    assert record_time != compliance.effective_at
    assert audit_time == audit.effective_at and isinstance(audit_time, int)
    assert b'"time":1784591245.25,' in event_requests(hec)[0].body


def test_without_a_sourcetype_each_event_goes_under_its_own(hec: FakeHec) -> None:
    """No `sourcetype`/`source` set: audit events go under openai:audit (source
    openai:audit_log), each compliance record type under its own openai:compliance:<type>
    (source openai:chatgpt_compliance), an unknown type under openai:compliance:logs; each is a
    stanza of deploy/splunk/props.conf."""
    types = ["AUTH_LOG", "AUDIT_LOG", "CODEX_SECURITY_LOG", "COSTS", "SOMETHING_NEW"]
    batch = [
        make_event(0),
        *(timed.record(1_784_592_000, record_type=t, n=i) for i, t in enumerate(types)),
    ]
    assert sink_for(hec, format="normalized").send(batch) == []
    got = [(e["sourcetype"], e["source"]) for e in hec.events]
    compliance = "openai:chatgpt_compliance"
    assert got == [
        ("openai:audit", "openai:audit_log"),
        ("openai:compliance:auth_log", compliance),
        ("openai:compliance:audit_log", compliance),
        ("openai:compliance:codex_security_log", compliance),
        ("openai:compliance:costs", compliance),
        ("openai:compliance:logs", compliance),
    ]
    props = (Path(__file__).resolve().parents[2] / "deploy" / "splunk" / "props.conf").read_text()
    assert all(f"\n[{sourcetype}]\n" in props for sourcetype, _ in got)


def test_an_audit_event_and_a_record_of_the_same_type_keep_their_own_sourcetypes(
    hec: FakeHec,
) -> None:
    """The sink remembers each type's labels, but a type string that both kinds carry still
    gives each kind its own sourcetype and source, whichever comes first."""
    audit = AuditEvent("audit-1", "AUTH_LOG", 1_784_592_000, json=b'{"id":"audit-1"}')
    record = timed.record(1_784_592_000)
    assert sink_for(hec).send([audit, record, audit, record]) == []
    assert [(e["sourcetype"], e["source"]) for e in hec.events] == [
        ("openai:audit", "openai:audit_log"),
        ("openai:compliance:auth_log", "openai:chatgpt_compliance"),
    ] * 2


def test_a_configured_sourcetype_and_source_apply_to_every_event(hec: FakeHec) -> None:
    """`sourcetype` and `source` set: every event, audit or compliance of any type, goes under
    them."""
    batch = [
        make_event(0),
        timed.record(1_784_592_000),
        timed.record(1_784_592_000, n=1, record_type="AUDIT_LOG"),
    ]
    sink_for(hec, sourcetype="chatgpt:all", source="shipper").send(batch)
    assert [(e["sourcetype"], e["source"]) for e in hec.events] == [("chatgpt:all", "shipper")] * 3


def test_gzip_body(hec: FakeHec) -> None:
    """compression = gzip sends a gzip body HEC decodes to the same events."""
    batch = events(30)
    sink_for(hec, compression="gzip").send(batch)
    request = event_requests(hec)[0]
    assert request.headers["content-encoding"] == "gzip" and request.raw_body[:2] == b"\x1f\x8b"
    assert gzip.decompress(request.raw_body) == request.body
    assert hec.event_ids() == [e.id for e in batch]


def test_hostile_content_arrives_as_exactly_one_identical_event_each(hec: FakeHec) -> None:
    """Newlines, NUL, quotes, braces, pipes, long and non-BMP strings never split or alter an event."""
    texts = [*HOSTILE_STRINGS, '}{"event":"forged"}\n]"|=\x00\U0001f984' * 40, "y" * 300_000]
    batch = [make_event(i, note=t, **{"project.created": {"id": t}}) for i, t in enumerate(texts)]
    sink_for(hec).send(batch)
    assert [e["event"] for e in hec.events] == [e.raw for e in batch]


# -- batching -------------------------------------------------------------------------------


def test_batches_by_event_count(hec: FakeHec) -> None:
    """batch_max_events bounds the events per request."""
    sink_for(hec, batch_max_events=7).send(events(20))
    assert [r.body.count(b'"sourcetype"') for r in event_requests(hec)] == [7, 7, 6]
    assert hec.event_ids() == [e.id for e in events(20)]


def test_batches_by_bytes_and_the_1mb_cap(hec: FakeHec) -> None:
    """Requests stay under batch_max_bytes, which may not exceed HEC's 1 MB default limit."""
    batch = [make_event(i, padding="p" * 2000) for i in range(1200)]  # ~2.5 MB in all
    hec.max_content_length = 1_000_000
    sink_for(hec).send(batch)
    sizes = [len(r.body) for r in event_requests(hec)]
    assert len(sizes) >= 3 and max(sizes) <= 900_000
    assert hec.event_ids() == [e.id for e in batch]
    with pytest.raises(ValidationError, match="1000000"):
        settings("http://127.0.0.1:9", batch_max_bytes=1_000_001)


def test_413_halves_the_batch(hec: FakeHec) -> None:
    """A 413 (content too large for this HEC) splits the batch; everything arrives once."""
    hec.max_content_length = 4000
    batch = events(40)
    assert sink_for(hec, batch_max_bytes=40_000).send(batch) == []
    assert hec.event_ids() == [e.id for e in batch]


# -- errors ---------------------------------------------------------------------------------


def test_busy_503_code_9_is_retried(hec: FakeHec, ft: FakeTime) -> None:
    """503 code 9 (server busy) is retried with backoff, then delivered once."""
    hec.busy(2)
    sink_for(hec, ft).send(events(5))
    assert len(ft.sleeps) == 2 and hec.event_ids() == [e.id for e in events(5)]


def test_429_honours_retry_after(hec: FakeHec, ft: FakeTime) -> None:
    """429 with Retry-After waits at least that long."""
    hec.receiver.script(Reply(429, b"", {"retry-after": "12"}), path="/services/collector/event")
    sink_for(hec, ft).send(events(1))
    assert ft.sleeps[0] >= 12 and len(hec.events) == 1


def test_invalid_event_number_dead_letters_exactly_that_event(hec: FakeHec) -> None:
    """400 code 6 with invalid-event-number: that event is dead-lettered, the rest delivered once."""
    batch = events(30)
    hec.reject_ids = {batch[4].id, batch[21].id}
    rejected = sink_for(hec).send(batch)
    assert [r.event.id for r in rejected] == [batch[4].id, batch[21].id]
    assert all("Invalid data format" in r.reason for r in rejected)
    assert hec.event_ids() == [e.id for e in batch if e.id not in hec.reject_ids]
    assert len(event_requests(hec)) == 3


def test_other_400_without_position_is_isolated_by_halving(hec: FakeHec) -> None:
    """A 400 that names no event is bisected down to the refused event."""
    batch = events(8)
    calls = {"n": 0}

    def refuse_event_5(request: Any) -> Reply:
        calls["n"] += 1
        if batch[5].id.encode() in request.body:
            return Reply.json(400, {"text": "Error in handling indexed fields", "code": 15})
        return hec.handle(request)

    hec.receiver.respond = refuse_event_5
    rejected = sink_for(hec).send(batch)
    assert [r.event.id for r in rejected] == [batch[5].id]
    assert hec.event_ids() == [e.id for e in batch if e is not batch[5]]


@pytest.mark.parametrize(
    ("token", "text"),
    [("unknown-token", "Invalid token"), ("disabled-tok", "Token disabled")],
)
def test_token_errors_are_fatal_with_a_clear_message(
    hec: FakeHec, monkeypatch: pytest.MonkeyPatch, token: str, text: str
) -> None:
    """401/403 codes 1-4: the sink stops and says the token is wrong or disabled, without the token."""
    monkeypatch.setenv("HEC_TOKEN", token)
    with pytest.raises(SinkFatalError, match="token is wrong or disabled") as info:
        sink_for(hec).send(events(1))
    assert text in str(info.value) and token not in str(info.value)


def test_missing_authorization_scheme_is_fatal(hec: FakeHec) -> None:
    """401 code 3 (invalid authorization) is fatal too."""
    hec.receiver.script(
        Reply.json(401, {"text": "Invalid authorization", "code": 3}),
        path="/services/collector/event",
    )
    with pytest.raises(SinkFatalError, match="Invalid authorization"):
        sink_for(hec).send(events(1))


def test_incorrect_index_is_fatal_and_names_the_index(hec: FakeHec) -> None:
    """400 code 7: the index does not exist or the token may not write to it."""
    hec.indexes = {"main"}
    with pytest.raises(SinkFatalError, match="index 'nope' does not exist"):
        sink_for(hec, index="nope").send(events(1))


def test_invalid_channel_is_fatal(hec: FakeHec) -> None:
    """400 code 11 (invalid data channel) is a configuration error."""
    hec.receiver.script(
        Reply.json(400, {"text": "Invalid data channel", "code": 11}),
        path="/services/collector/event",
    )
    with pytest.raises(SinkFatalError, match="channel"):
        sink_for(hec).send(events(1))


def test_wrong_url_is_fatal(hec: FakeHec) -> None:
    """A 404 page without a HEC code means url does not point at HEC."""
    hec.receiver.script(Reply(404, b"<html>not found</html>"), path="/services/collector/event")
    with pytest.raises(SinkFatalError, match="no HEC endpoint"):
        sink_for(hec).send(events(1))


def test_receiver_restart_and_outage(hec: FakeHec, ft: FakeTime) -> None:
    """HEC restarting between sends is transparent; HEC down during one is retryable."""
    sink = sink_for(hec, ft)
    sink.send(events(3))
    hec.receiver.restart()
    sink.send(events(3, start=3))
    with hec.receiver.down(), pytest.raises(SinkRetryableError, match="ConnectError"):
        sink.send(events(3, start=6))
    sink.send(events(3, start=6))
    assert hec.event_ids() == [e.id for e in events(9)]


# -- indexer acknowledgement ----------------------------------------------------------------


def test_ack_flow_waits_until_every_batch_is_indexed(hec: FakeHec, ft: FakeTime) -> None:
    """flush() polls /ack on the same channel until every ackId is true."""
    hec.ack_after_polls = 3
    sink = ack_sink(hec, ft, batch_max_events=10)
    sink.send(events(25))
    assert len(hec.receiver.requests_to("/services/collector/ack")) == 0
    sink.flush()
    acks = hec.receiver.requests_to("/services/collector/ack")
    assert len(acks) == 3 and acks[0].json() == {"acks": [0, 1, 2]}
    channels = {r.headers["x-splunk-request-channel"] for r in hec.receiver.requests}
    assert channels == {sink.channel}
    assert ft.sleeps == [1.0, 1.0]
    assert hec.event_ids() == [e.id for e in events(25)]
    sink.flush()  # nothing pending: returns at once
    assert len(hec.receiver.requests_to("/services/collector/ack")) == 3


def test_batch_never_acked_is_resent(hec: FakeHec, ft: FakeTime) -> None:
    """A batch whose ackId never turns true within ack_timeout is sent again, then acknowledged."""
    hec.lose_next_acks(1)
    sink = ack_sink(hec, ft, batch_max_events=5)
    sink.send(events(10))
    sink.flush()
    assert hec.event_ids() == [e.id for e in events(5, start=5)] + [e.id for e in events(5)]
    assert [e["event"]["id"] for e in hec.lost] == [e.id for e in events(5)]
    assert ft.now >= 30


def test_batch_never_acked_after_resends_gives_up(hec: FakeHec, ft: FakeTime) -> None:
    """After ack_max_resends, flush() raises SinkRetryableError (the cursor stays put)."""
    hec.lose_next_acks(100)
    sink = ack_sink(hec, ft, ack_max_resends=2)
    sink.send(events(3))
    with pytest.raises(SinkRetryableError, match="not acknowledged"):
        sink.flush()
    assert len(event_requests(hec)) == 3 and hec.events == []
    assert ft.now < 200


def test_splunk_restart_losing_acks_resends(hec: FakeHec, ft: FakeTime) -> None:
    """A HEC restart forgets pending acks; the sink re-sends (at-least-once, duplicates possible)."""
    hec.ack_after_polls = 2
    sink = ack_sink(hec, ft, batch_max_events=4)
    sink.send(events(8))
    hec.forget_channels()
    hec.receiver.restart()
    sink.flush()
    ids = hec.event_ids()
    assert sorted(set(ids)) == [e.id for e in events(8)] and len(ids) == 16


def test_invalid_event_with_ack_resends_the_accepted_prefix(hec: FakeHec, ft: FakeTime) -> None:
    """With acks, events before a code-6 event have no ackId, so they are sent again (not lost)."""
    batch = events(6)
    hec.reject_ids = {batch[3].id}
    sink = ack_sink(hec, ft)
    rejected = sink.send(batch)
    sink.flush()
    assert [r.event.id for r in rejected] == [batch[3].id]
    ids = hec.event_ids()
    assert set(ids) == {e.id for e in batch} - {batch[3].id}
    assert ids.count(batch[0].id) == 2 and ids.count(batch[5].id) == 1


def test_ack_enabled_but_token_without_ack_is_fatal(hec: FakeHec, ft: FakeTime) -> None:
    """indexer_ack = true with a token lacking acknowledgement stops with advice."""
    sink = sink_for(hec, ft, indexer_ack=True)
    with pytest.raises(SinkFatalError, match="indexer_ack"):
        sink.send(events(1))


def test_ack_endpoint_refusing_is_fatal(hec: FakeHec, ft: FakeTime) -> None:
    """400 code 14 (ACK is disabled) from /ack is fatal with advice."""
    sink = ack_sink(hec, ft)
    sink.send(events(1))
    hec.receiver.script(
        Reply.json(400, {"text": "ACK is disabled", "code": 14}), path="/services/collector/ack"
    )
    with pytest.raises(SinkFatalError, match="indexer acknowledgement is disabled"):
        sink.flush()


def test_configured_channel_is_used(hec: FakeHec, ft: FakeTime) -> None:
    """A configured channel GUID is sent on every request."""
    channel = "0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba"
    sink = ack_sink(hec, ft, channel=channel)
    sink.send(events(2))
    sink.flush()
    assert {r.headers["x-splunk-request-channel"] for r in hec.receiver.requests} == {channel}


# -- probe ----------------------------------------------------------------------------------


def test_probe_reports_health_and_token_without_indexing(hec: FakeHec) -> None:
    """probe() checks /health and validates the token with an empty POST (code 5); nothing indexed."""
    verdict = sink_for(hec).probe()
    assert "HEC is healthy" in verdict and "token: accepted" in verdict
    assert hec.events == []


def test_probe_unhealthy_bad_token_and_unreachable(
    hec: FakeHec, monkeypatch: pytest.MonkeyPatch
) -> None:
    """probe() raises: retryable when unhealthy or unreachable, fatal when the token is refused."""
    hec.unhealthy = True
    with pytest.raises(SinkRetryableError, match=r"queues are full.*token: accepted"):
        sink_for(hec).probe()
    hec.unhealthy = False
    monkeypatch.setenv("HEC_TOKEN", "unknown-token")
    with pytest.raises(SinkFatalError, match=r"HEC is healthy.*token: refused"):
        sink_for(hec).probe()
    sink = sink_for(hec)
    with hec.receiver.down(), pytest.raises(SinkRetryableError, match="unreachable"):
        sink.probe()


# -- secrets and settings -------------------------------------------------------------------


def test_token_never_in_errors_or_logs(hec: FakeHec, ft: FakeTime) -> None:
    """The token stays out of errors and logs even when HEC echoes the Authorization header."""
    echo = lambda r: Reply(503, r.headers["authorization"].encode())  # noqa: E731
    hec.receiver.script(*[echo] * 4, path="/services/collector/event")
    with capture_logs() as logs, pytest.raises(SinkRetryableError) as info:
        sink_for(hec, ft).send(events(1))
    assert logs and TOKEN not in str(info.value) + repr(logs)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"url": "https://splunk:8088/services/collector/event"}, "without /services/collector"),
        ({"channel": "not-a-guid"}, "GUID"),
        ({"token_env": None}, "token_env or token_file"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_invalid_settings_are_rejected(overrides: dict[str, Any], message: str) -> None:
    """Bad URLs, channels, missing tokens and unknown keys are refused at config time."""
    with pytest.raises(ValidationError, match=message):
        settings(**{"url": "https://splunk:8088", **overrides})


def test_plugin_allows_raw_and_normalized_only() -> None:
    """Only raw and normalized can be wrapped in the HEC envelope."""
    assert plugin.settings_model.allowed_formats == ("raw", "normalized")
    assert plugin.settings_model.model_fields["batch_max_bytes"].default <= 1_000_000
