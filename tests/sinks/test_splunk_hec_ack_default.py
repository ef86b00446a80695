"""Splunk HEC: indexer acknowledgement is on by default where the token has it, and loudly off
where it has not (at start, and in `shipper check`), against the loopback fake HEC."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from shipper.errors import SinkFatalError
from shipper.model.event import AuditEvent
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.splunk_hec import ACK_PATH, FakeHec, Token
from sinks.splunk_hec.sink import SplunkHecSettings, SplunkHecSink

PLAIN_TOKEN = "plain-token-0123"
ACK_TOKEN = "ack-token-4567"
ACCEPTED_ONLY = "accepted by HEC, not indexed"


def make_event(i: int) -> AuditEvent:
    raw = {
        "id": f"audit_log-{i:05d}",
        "object": "organization.audit_log",
        "type": "project.created",
        "effective_at": 1_700_000_000 + i,
        "actor": {"type": "api_key", "api_key": {"id": "key_1", "type": "user"}},
        "project.created": {"id": f"proj_{i}", "data": {"name": f"p{i}"}},
    }
    return AuditEvent.from_api(raw, organization="acme")


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def hec(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHec]:
    monkeypatch.setenv("PLAIN_TOKEN", PLAIN_TOKEN)
    monkeypatch.setenv("ACK_TOKEN", ACK_TOKEN)
    fake = FakeHec({PLAIN_TOKEN: Token(), ACK_TOKEN: Token(ack=True)})
    with fake.receiver:
        yield fake


@pytest.fixture
def sinks() -> Iterator[list[SplunkHecSink]]:
    made: list[SplunkHecSink] = []
    yield made
    for sink in made:
        sink.close()


def make_sink(
    fake: FakeHec, made: list[SplunkHecSink], token: str, **overrides: Any
) -> SplunkHecSink:
    values: dict[str, Any] = {
        "type": "splunk_hec", "name": "splunk", "url": fake.receiver.url, "token_env": token,
        "retry_max_attempts": 2, "ack_timeout": 30, "batch_max_events": 5,
    }  # fmt: skip
    ft = FakeTime()
    sink = SplunkHecSink(
        SplunkHecSettings.model_validate(values | overrides), sleep=ft.sleep, clock=ft.clock
    )
    made.append(sink)
    return sink


def ack_off_warnings(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == "hec_indexer_ack_off" and e["log_level"] == "warning"]


def test_hec_indexer_ack_is_the_default_when_the_token_has_it(
    hec: FakeHec, sinks: list[SplunkHecSink]
) -> None:
    """Default settings, ack-capable token: a batch HEC accepted but never indexed is sent again."""
    hec.lose_next_acks(1)  # an indexer dies with the first request's data
    sink = make_sink(hec, sinks, "ACK_TOKEN")
    events = [make_event(i) for i in range(10)]
    with capture_logs() as logs:
        sink.open()
        assert list(sink.send(events)) == []
        sink.flush()
    assert sorted(hec.event_ids()) == [e.id for e in events]
    assert hec.receiver.requests_to(ACK_PATH), "flush() never asked HEC what was indexed"
    assert ack_off_warnings(logs) == []


@pytest.mark.parametrize(
    ("token", "setting", "reason"),
    [("PLAIN_TOKEN", "auto", "disabled on the token"), ("ACK_TOKEN", False, "indexer_ack = false")],
)
def test_hec_start_warns_that_delivery_means_only_accepted_when_ack_is_off(
    hec: FakeHec, sinks: list[SplunkHecSink], token: str, setting: Any, reason: str
) -> None:
    """A token without ack (or ack turned off) is a warning at start, and delivery still works."""
    sink = make_sink(hec, sinks, token, indexer_ack=setting)
    with capture_logs() as logs:
        sink.open()
    (warning,) = ack_off_warnings(logs)
    assert ACCEPTED_ONLY in warning["meaning"] and reason in warning["reason"]
    assert list(sink.send([make_event(1)])) == []
    sink.flush()
    assert hec.event_ids() == [make_event(1).id]
    assert sink.indexer_ack is False


def test_hec_auto_ack_is_settled_by_the_first_reply_when_start_could_not_tell(
    hec: FakeHec, sinks: list[SplunkHecSink]
) -> None:
    """/ack unavailable at start: the first event reply decides (an ackId: on; none: off, warned)."""
    busy = Reply.json(503, {"text": "Server is busy", "code": 9})
    hec.receiver.script(busy, path=ACK_PATH)
    hec.lose_next_acks(1)
    with_ack = make_sink(hec, sinks, "ACK_TOKEN")
    with_ack.open()
    assert with_ack.indexer_ack is None
    assert list(with_ack.send([make_event(1)])) == []
    with_ack.flush()
    assert with_ack.indexer_ack is True and hec.event_ids() == [make_event(1).id]

    plain = make_sink(hec, sinks, "PLAIN_TOKEN")
    hec.receiver.script(busy, path=ACK_PATH)
    plain.open()
    with capture_logs() as logs:
        assert list(plain.send([make_event(2)])) == []
    assert plain.indexer_ack is False and len(ack_off_warnings(logs)) == 1


@pytest.mark.parametrize(
    ("token", "setting", "expected"),
    [
        ("ACK_TOKEN", "auto", "indexer acknowledgement: on (delivered means indexed)"),
        ("PLAIN_TOKEN", "auto", "indexer acknowledgement: OFF, disabled on the token"),
        ("ACK_TOKEN", False, "indexer acknowledgement: OFF (indexer_ack = false)"),
    ],
)
def test_hec_check_says_whether_delivered_means_indexed_or_only_accepted(
    hec: FakeHec, sinks: list[SplunkHecSink], token: str, setting: Any, expected: str
) -> None:
    """`shipper check` names the ack state; when off, that delivery stops at "accepted"."""
    verdict = make_sink(hec, sinks, token, indexer_ack=setting).probe()
    assert expected in verdict and "token: accepted" in verdict
    assert (ACCEPTED_ONLY in verdict) == ("OFF" in expected)
    assert hec.events == []


def test_hec_check_refuses_indexer_ack_true_with_a_token_without_it(
    hec: FakeHec, sinks: list[SplunkHecSink]
) -> None:
    """indexer_ack = true on a token without acknowledgement fails `check` with the fix."""
    with pytest.raises(SinkFatalError, match="enable it on the token or set indexer_ack = false"):
        make_sink(hec, sinks, "PLAIN_TOKEN", indexer_ack=True).probe()
