"""The webhook sink against a real local receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from shipper.emulator.events import HOSTILE_STRINGS
from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.model.event import AuditEvent, normalize
from shipper.secrets import SecretUnavailableError
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.webhook import FakeWebhook, _verify
from sinks.webhook.signing import message_id, signature
from sinks.webhook.sink import WebhookSettings, WebhookSink, plugin

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
TOKEN = "bearer-token-9f8e7d6c5b4a"


def make_event(i: int, **extra: Any) -> AuditEvent:
    raw = {
        "id": f"audit_log-{i:04d}",
        "object": "organization.audit_log",
        "type": "api_key.created",
        "effective_at": 1_700_000_000 + i,
        "actor": {
            "type": "session",
            "session": {"user": {"id": "user-1", "email": "a@example.com"}},
        },
        "api_key.created": {"id": f"key_{i}", "data": {"scopes": ["api.model.read"]}},
        **extra,
    }
    return AuditEvent.from_api(raw, organization="acme")


def events(n: int, start: int = 0) -> list[AuditEvent]:
    return [make_event(i) for i in range(start, start + n)]


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def rx() -> Iterator[FakeWebhook]:
    fake = FakeWebhook()
    with fake.receiver:
        yield fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def settings(url: str, **overrides: Any) -> WebhookSettings:
    values: dict[str, Any] = {"type": "webhook", "name": "hook", "url": url}
    return WebhookSettings.model_validate({**values, "retry_max_attempts": 4, **overrides})


def bad_settings(**overrides: Any) -> WebhookSettings:
    return settings(**{"url": "http://127.0.0.1:9/hook", **overrides})


_open_sinks: list[WebhookSink] = []


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    yield
    while _open_sinks:
        _open_sinks.pop().close()


def sink_for(fake: FakeWebhook, sleeps: Sleeps | None = None, **overrides: Any) -> WebhookSink:
    sink = WebhookSink(settings(fake.receiver.url + "/hook", **overrides), sleep=sleeps or Sleeps())
    _open_sinks.append(sink)
    sink.open()
    return sink


# -- content --------------------------------------------------------------------------------


def test_receiver_gets_each_raw_event_field_by_field(rx: FakeWebhook) -> None:
    """Raw format: each NDJSON line is the API object, in order, in one request."""
    batch = events(5)
    assert sink_for(rx).send(batch) == []
    assert rx.documents == [e.raw for e in batch]
    (request,) = rx.receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/x-ndjson"


def test_json_array_encoding_with_normalized_documents(rx: FakeWebhook) -> None:
    """json_array sends one JSON array of the normalized documents."""
    batch = events(3)
    sink_for(rx, encoding="json_array", format="normalized").send(batch)
    assert rx.documents == [json.loads(json.dumps(normalize(e))) for e in batch]
    assert rx.receiver.requests[0].headers["content-type"] == "application/json"


def test_put_method_and_static_headers(rx: FakeWebhook) -> None:
    """method = PUT and extra headers are sent as configured."""
    sink_for(rx, method="PUT", headers={"X-Team": "secops"}).send(events(1))
    request = rx.receiver.requests[0]
    assert request.method == "PUT" and request.headers["x-team"] == "secops"


def test_gzip_body_is_compressed_and_decodes_to_the_same_documents(rx: FakeWebhook) -> None:
    """compression = gzip sends a gzip body with Content-Encoding: gzip."""
    batch = events(20)
    sink_for(rx, compression="gzip").send(batch)
    request = rx.receiver.requests[0]
    assert request.headers["content-encoding"] == "gzip"
    assert request.raw_body[:2] == b"\x1f\x8b"
    assert gzip.decompress(request.raw_body) == request.body
    assert rx.documents == [e.raw for e in batch]


def test_hostile_content_arrives_as_exactly_one_identical_record_per_event(rx: FakeWebhook) -> None:
    """Newlines, NUL, quotes, brackets, pipes, long and non-BMP strings never split or alter a record."""
    batch = [
        make_event(i, actor={"type": "session", "session": {"user_agent": s, "user": {"email": s}}})
        for i, s in enumerate(
            [*HOSTILE_STRINGS, ']"|=\x00\n\r\u2028\U0001f984' * 50, "x" * 200_000]
        )
    ]
    for encoding in ("ndjson", "json_array"):
        rx.deliveries.clear()
        sink_for(rx, encoding=encoding).send(batch)
        assert rx.documents == [e.raw for e in batch]


def test_unencodable_event_is_rejected_alone(rx: FakeWebhook) -> None:
    """An event JSON cannot carry (a lone surrogate) is dead-lettered; the others are delivered."""
    bad = make_event(99, note="\ud800")
    batch = [*events(2), bad]
    rejected = sink_for(rx).send(batch)
    assert [r.event for r in rejected] == [bad] and "JSON" in rejected[0].reason
    assert rx.ids() == [e.id for e in batch[:2]]


# -- batching -------------------------------------------------------------------------------


def test_batches_by_event_count(rx: FakeWebhook) -> None:
    """batch_max_events bounds the events per request."""
    sink_for(rx, batch_max_events=10).send(events(25))
    sizes = [len(d.documents) for d in rx.deliveries]
    assert sizes == [10, 10, 5]
    assert rx.ids() == [e.id for e in events(25)]


@pytest.mark.parametrize("encoding", ["ndjson", "json_array"])
def test_batches_by_bytes(rx: FakeWebhook, encoding: str) -> None:
    """batch_max_bytes bounds the body size of every request, whatever the encoding."""
    batch = events(40)
    sink_for(rx, batch_max_bytes=2048, encoding=encoding).send(batch)
    assert len(rx.receiver.requests) > 1
    assert all(len(r.raw_body) <= 2048 for r in rx.receiver.requests)
    assert rx.ids() == [e.id for e in batch]


# -- signatures -----------------------------------------------------------------------------


def test_signed_requests_verify_and_keep_their_id_across_retries(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """webhook-id is stable across retries; timestamp and signature are renewed per attempt."""
    monkeypatch.setenv("HOOK_SECRET_T1", SECRET)
    fake = FakeWebhook(secret=SECRET)
    ticks = iter(range(10))
    with fake.receiver, capture_logs():
        fake.receiver.script(Reply(503, b"busy"), Reply(503, b"busy"))
        clock = lambda: 1_700_000_000.0 + next(ticks)  # noqa: E731
        sink = WebhookSink(
            settings(fake.receiver.url, secret_env="HOOK_SECRET_T1"), sleep=sleeps, clock=clock
        )
        _open_sinks.append(sink)
        sink.open()
        fake.tolerance = 10**10  # the clock above is fixed in the past
        batch = events(3)
        assert sink.send(batch) == []
    requests = fake.receiver.requests
    assert len(requests) == 3 and len(fake.deliveries) == 1
    assert {r.headers["webhook-id"] for r in requests} == {message_id(e.id for e in batch)}
    assert [r.headers["webhook-timestamp"] for r in requests] == [
        "1700000000",
        "1700000001",
        "1700000002",
    ]
    assert len({r.headers["webhook-signature"] for r in requests}) == 3
    assert all(_verify(SECRET, r, 10**10) is None for r in requests)
    assert len(sleeps.calls) == 2


def test_signature_covers_the_uncompressed_payload(
    sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With gzip, the signature is over the JSON payload the receiver decodes."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    fake = FakeWebhook(secret=SECRET)
    with fake.receiver:
        sink_for(fake, sleeps, secret_env="HOOK_SECRET", compression="gzip").send(events(2))
    request = fake.receiver.requests[0]
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = signature(
        key, request.headers["webhook-id"], int(request.headers["webhook-timestamp"]), request.body
    )
    assert request.headers["webhook-signature"] == expected
    assert len(fake.deliveries) == 1


def test_resending_a_batch_reuses_its_id_so_receivers_can_drop_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same events give the same webhook-id; a deduplicating receiver keeps one copy."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    fake = FakeWebhook(secret=SECRET, dedupe=True)
    with fake.receiver:
        sink = sink_for(fake, secret_env="HOOK_SECRET")
        sink.send(events(4))
        sink.send(events(4))
        sink.send(events(4, start=4))
    assert fake.duplicates_dropped == 1
    assert fake.ids() == [e.id for e in events(8)]


def test_wrong_signing_secret_is_fatal_and_says_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A receiver refusing the signature (401) stops the sink with a credentials message."""
    other = "whsec_" + base64.b64encode(b"z" * 32).decode()
    monkeypatch.setenv("HOOK_SECRET", other)
    fake = FakeWebhook(secret=SECRET)
    with fake.receiver, pytest.raises(SinkFatalError, match="credentials") as info:
        sink_for(fake, secret_env="HOOK_SECRET").send(events(1))
    assert other not in str(info.value) and fake.refusals == ["no matching signature"]


def test_malformed_signing_secret_is_refused_at_open(
    monkeypatch: pytest.MonkeyPatch, rx: FakeWebhook
) -> None:
    """A secret that is not whsec_ + base64 of >= 24 bytes is a fatal configuration error."""
    monkeypatch.setenv("HOOK_SECRET", "whsec_c2hvcnQ=")
    with pytest.raises(SinkFatalError, match="24"):
        sink_for(rx, secret_env="HOOK_SECRET")


# -- auth -----------------------------------------------------------------------------------


def test_bearer_and_basic_auth_are_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """bearer_token_env and username + password_file authenticate as configured."""
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    fake = FakeWebhook(bearer=TOKEN)
    with fake.receiver:
        sink_for(fake, bearer_token_env="HOOK_TOKEN").send(events(1))
    assert len(fake.deliveries) == 1
    fake = FakeWebhook(basic=("shipper", "pa55-word-x"))
    with fake.receiver:
        monkeypatch.setenv("HOOK_PW", "pa55-word-x")
        sink_for(fake, username="shipper", password_env="HOOK_PW").send(events(1))
    assert len(fake.deliveries) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_is_fatal(rx: FakeWebhook, status: int) -> None:
    """401/403 stop the sink: retrying with the same credentials cannot help."""
    rx.receiver.script(Reply(status, b"nope"))
    with pytest.raises(SinkFatalError, match="credentials"):
        sink_for(rx).send(events(2))
    assert len(rx.receiver.requests) == 1


def test_missing_secret_variable_is_a_config_error_at_open(rx: FakeWebhook) -> None:
    """An unset token variable is a config error at open() naming the key and the variable."""
    with pytest.raises(
        SecretUnavailableError, match="bearer_token_env: the variable HOOK_UNSET_VAR"
    ):
        sink_for(rx, bearer_token_env="HOOK_UNSET_VAR")


# -- status handling ------------------------------------------------------------------------


def test_429_waits_at_least_retry_after_then_delivers(rx: FakeWebhook, sleeps: Sleeps) -> None:
    """429 with Retry-After is retried after at least that long."""
    rx.receiver.script(Reply(429, b"slow down", {"retry-after": "7"}))
    sink_for(rx, sleeps).send(events(2))
    assert sleeps.calls and sleeps.calls[0] >= 7
    assert rx.ids() == [e.id for e in events(2)]


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504, 507])
def test_transient_statuses_are_retried_then_delivered(
    rx: FakeWebhook, sleeps: Sleeps, status: int
) -> None:
    """408 and any 5xx are retried; the batch arrives once."""
    rx.receiver.script(Reply(status), Reply(status))
    sink_for(rx, sleeps).send(events(3))
    assert len(sleeps.calls) == 2 and rx.ids() == [e.id for e in events(3)]


def test_exhausted_retries_raise_retryable(rx: FakeWebhook, sleeps: Sleeps) -> None:
    """A receiver that keeps answering 503 ends in SinkRetryableError after retry_max_attempts."""
    rx.receiver.script(*[Reply(503, b"down")] * 4)
    with pytest.raises(SinkRetryableError, match="503"):
        sink_for(rx, sleeps).send(events(1))
    assert len(rx.receiver.requests) == 4


def test_one_refused_event_is_isolated_and_the_rest_delivered_once(rx: FakeWebhook) -> None:
    """A 4xx content refusal halves the batch until only the bad events are dead-lettered."""
    batch = events(50)
    rx.reject_ids = {batch[17].id, batch[40].id}
    rejected = sink_for(rx).send(batch)
    assert [r.event.id for r in rejected] == [batch[17].id, batch[40].id]
    assert all("HTTP 422" in r.reason for r in rejected)
    good = [e.id for e in batch if e.id not in rx.reject_ids]
    assert rx.ids() == good  # each good event exactly once, in order
    assert len(rx.receiver.requests) < 30


def test_a_receiver_refusing_everything_fails_the_sink_in_a_few_requests(rx: FakeWebhook) -> None:
    """Refusals no single event explains fail the sink (cursor stays) instead of dead-lettering."""
    batch = events(500)
    rx.reject_ids = {e.id for e in batch}
    with pytest.raises(SinkRetryableError, match="not about single events") as failure:
        sink_for(rx).send(batch)
    progress = failure.value.progress
    assert progress is not None and not progress.delivered and not progress.rejected
    assert len(rx.receiver.requests) <= 20


@pytest.mark.parametrize("status", [404, 405, 410, 415])
def test_wrong_url_or_encoding_is_fatal_not_dead_lettered(rx: FakeWebhook, status: int) -> None:
    """404/405/410/415 are configuration problems: the sink stops instead of dead-lettering."""
    rx.receiver.script(Reply(status))
    with pytest.raises(SinkFatalError, match=str(status)):
        sink_for(rx).send(events(3))


def test_redirect_is_not_followed(rx: FakeWebhook) -> None:
    """3xx is fatal and names the redirect target; credentials never follow it."""
    rx.receiver.script(Reply(302, headers={"location": "http://elsewhere.example/"}))
    with pytest.raises(SinkFatalError, match=r"elsewhere\.example"):
        sink_for(rx).send(events(1))
    assert len(rx.receiver.requests) == 1


def test_receiver_restart_between_and_during_sends(rx: FakeWebhook, sleeps: Sleeps) -> None:
    """A restart drops keep-alive connections; the sink reconnects; a down receiver is retryable."""
    sink = sink_for(rx, sleeps)
    sink.send(events(2))
    rx.receiver.restart()
    sink.send(events(2, start=2))
    with rx.receiver.down(), pytest.raises(SinkRetryableError, match="ConnectError"):
        sink.send(events(2, start=4))
    sink.send(events(2, start=4))
    assert rx.ids() == [e.id for e in events(6)]


def test_connection_dropped_mid_request_is_retried(rx: FakeWebhook, sleeps: Sleeps) -> None:
    """A connection closed without an answer is retried like any transport error."""
    rx.receiver.script(Reply(drop=True))
    sink_for(rx, sleeps).send(events(2))
    assert rx.ids() == [e.id for e in events(2)]


# -- probe ----------------------------------------------------------------------------------


def test_probe_sends_options_and_reports_status(rx: FakeWebhook) -> None:
    """probe() sends OPTIONS (no events) and reports the receiver's answer."""
    verdict = sink_for(rx).probe()
    assert "reachable" in verdict and "HTTP 204" in verdict
    assert [r.method for r in rx.receiver.requests] == ["OPTIONS"] and rx.deliveries == []


def test_probe_unreachable_and_refused(rx: FakeWebhook) -> None:
    """probe() raises 'unreachable' when nothing listens, and fatal when credentials are refused."""
    sink = sink_for(rx)
    with rx.receiver.down(), pytest.raises(SinkRetryableError, match="unreachable"):
        sink.probe()
    rx.receiver.script(Reply(401))
    with pytest.raises(SinkFatalError, match="credentials"):
        sink.probe()


# -- secrets --------------------------------------------------------------------------------


def test_secrets_never_appear_in_errors_or_logs(
    monkeypatch: pytest.MonkeyPatch, sleeps: Sleeps
) -> None:
    """Tokens and signing secrets stay out of every error and log line, even when echoed back."""
    monkeypatch.setenv("HOOK_TOKEN", TOKEN)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    fake = FakeWebhook()
    echo = lambda r: Reply(503, r.headers.get("authorization", "").encode())  # noqa: E731
    with fake.receiver, capture_logs() as logs:
        fake.receiver.script(echo, echo, lambda r: Reply(401, r.headers["authorization"].encode()))
        sink = sink_for(fake, sleeps, bearer_token_env="HOOK_TOKEN", secret_env="HOOK_SECRET")
        with pytest.raises(SinkFatalError) as info:
            sink.send(events(1))
    text = str(info.value) + repr(logs)
    assert logs and TOKEN not in text and SECRET not in text
    assert SECRET.removeprefix("whsec_") not in text


# -- settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"surprise": 1}, "Extra inputs"),
        ({"headers": {"Authorization": "x"}}, "may not set"),
        ({"bearer_token_env": "A", "username": "u", "password_env": "B"}, "not both"),
        ({"username": "u"}, "needs both"),
        ({"url": "http://203.0.113.5/hook"}, "plain http"),
        ({"method": "PATCH"}, "method"),
    ],
)
def test_invalid_settings_are_rejected(overrides: dict[str, Any], message: str) -> None:
    """Unknown keys, reserved headers and inconsistent auth are refused at config time."""
    with pytest.raises(ValidationError, match=message):
        bad_settings(**overrides)


def test_plugin_offers_json_formats_only() -> None:
    """The plugin's settings allow raw/normalized/ecs/ocsf, not CEF."""
    assert plugin.settings_model.allowed_formats == ("raw", "normalized", "ecs", "ocsf")
    sink = plugin.create(settings("http://127.0.0.1:9/", secret_file=Path("/nonexistent")), None)  # type: ignore[arg-type]
    with pytest.raises(SecretUnavailableError, match="secret_file: cannot read"):
        sink.open()
    sink.close()
