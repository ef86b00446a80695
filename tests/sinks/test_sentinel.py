"""The Sentinel sink against its fake Entra ID and Logs Ingestion API (real azure-identity, loopback TLS)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError
from structlog.testing import capture_logs

from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.model.event import AuditEvent, ComplianceRecord
from shipper.testing.contract.events import api_event, events
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.sentinel import (
    CLIENT_ID,
    OPENAI_COLUMNS,
    TENANT,
    FakeSentinel,
    loopback_tls,
)
from sinks.sentinel.settings import SentinelSettings
from sinks.sentinel.sink import SentinelSink
from tests.contract.harness_sentinel import SECRET, settings_for
from tests.sinks import timed

GENERIC_STREAM = "Custom-OpenAIShipperEvents"
GENERIC_COLUMNS = {
    "TimeGenerated": "datetime",
    "EventId": "string",
    "EventType": "string",
    "SourceType": "string",
    "Event": "dynamic",
}


class Clock:
    """The fake's minute window and the sink's sleeps share this clock: sleeping advances it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Any, Path]:
    return loopback_tls(tmp_path)


@pytest.fixture
def fake(tls: tuple[Any, Path], clock: Clock) -> Iterator[FakeSentinel]:
    with FakeSentinel(tls[0], client_secret=SECRET, clock=clock) as made:
        made.declare_stream(GENERIC_STREAM, GENERIC_COLUMNS)
        yield made


def make(fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock, **overrides: Any) -> SentinelSink:
    settings = settings_for(fake, tls[1], **{"retry_max_time": 600, **overrides})
    return SentinelSink(settings, sleep=clock.sleep)


def deliver(sink: SentinelSink, batch: list[AuditEvent]) -> list[Any]:
    sink.open()
    try:
        rejected = list(sink.send(batch))
        sink.flush()
        return rejected
    finally:
        sink.close()


def big_events(count: int, size: int, start: int = 0) -> list[AuditEvent]:
    return [
        AuditEvent.from_api(api_event(start + i, text="y" * size, t=1_720_000_000))
        for i in range(count)
    ]


# -- the request -----------------------------------------------------------------------------


def test_request_is_a_gzip_json_array_with_the_openai_solution_columns(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """POST to the DCR stream, api-version 2023-01-01, gzip JSON array, bearer token, a request id; no column dropped."""
    batch = events(3)
    assert deliver(make(fake, tls, clock, connector_name="prod-shipper"), batch) == []
    (request,) = fake.ingestion_requests()
    assert request.path == f"/dataCollectionRules/{fake.dcr_id}/streams/Custom-OpenAIAuditLogs_CL"
    assert request.query == {"api-version": ["2023-01-01"]}
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["authorization"].removeprefix("Bearer ") in fake.issued_tokens
    assert len(request.headers["x-ms-client-request-id"]) == 36
    body = json.loads(request.body)
    assert [set(record) for record in body] == [set(OPENAI_COLUMNS)] * 3
    assert body[0]["EventDetails"] == batch[0].raw[batch[0].type]
    assert body[0]["friendlyName"] == "prod-shipper"
    assert fake.dropped_columns == set()
    assert fake.record_ids() == [e.id for e in batch]


def test_generic_profile_sends_the_envelope_with_the_normalized_document(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Profile generic: TimeGenerated, EventId, EventType, SourceType and the normalized document in Event."""
    batch = events(2)
    assert deliver(make(fake, tls, clock, profile="generic"), batch) == []
    (request,) = fake.ingestion_requests()
    assert request.path.endswith("/streams/" + GENERIC_STREAM)
    record = fake.records[0]
    assert set(record) == set(GENERIC_COLUMNS)
    assert record["EventId"] == batch[0].id
    assert record["TimeGenerated"] == batch[0].timestamp
    assert record["SourceType"] == "audit_log"
    assert record["Event"]["id"] == batch[0].id and "actor_kind" in record["Event"]


def test_compliance_records_go_through_the_generic_profile_only(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """A compliance record is sent by profile generic, and refused with a clear error by openai_solution."""
    record = ComplianceRecord.from_api(
        {"id": "evt-1", "type": "conversation.created", "effective_at": 1_720_000_000}
    )
    assert deliver(make(fake, tls, clock, profile="generic"), [record]) == []
    assert fake.records[-1]["SourceType"] == "chatgpt_compliance"
    with pytest.raises(SinkFatalError, match='profile = "generic"'):
        deliver(make(fake, tls, clock), [record])


def test_a_compliance_record_lands_at_its_own_time_not_its_files_end(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Profile generic: `TimeGenerated` of a compliance record is its own time (milliseconds
    kept), not its log file's end time; an audit event's stays its `effective_at`, in both
    profiles (openai_solution sends the API's `effective_at` for the DCR to read)."""
    file_end = 1_720_000_000
    record, audit = timed.record(file_end), events(1)[0]
    assert deliver(make(fake, tls, clock, profile="generic"), [record, audit]) == []
    times = {r["EventId"]: r["TimeGenerated"] for r in fake.records}
    assert times[record.id] == "2024-07-03T09:34:05.250Z"
    assert times[record.id] != record.timestamp
    assert times[audit.id] == audit.timestamp
    assert deliver(make(fake, tls, clock), [audit]) == []
    assert fake.records[-1]["effective_at"] == audit.effective_at == audit.raw["effective_at"]


# -- documented limits -----------------------------------------------------------------------


def test_requests_stay_within_one_million_uncompressed_bytes(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Limit 1 MB per call: every request's uncompressed array is <= 1,000,000 bytes, and none is refused."""
    batch = big_events(120, 30_000)
    assert deliver(make(fake, tls, clock), batch) == []
    requests = fake.ingestion_requests()
    assert len(requests) >= 4
    assert all(len(r.body) <= 1_000_000 for r in requests)
    assert all(json.loads(r.body) for r in requests)
    assert fake.record_ids() == [e.id for e in batch]


def test_batch_max_bytes_over_the_api_limit_is_a_config_error() -> None:
    """batch_max_bytes above 1,000,000 is refused at load, naming the key."""
    with pytest.raises(ValidationError, match="batch_max_bytes"):
        SentinelSettings.model_validate(
            {
                "name": "s",
                "url": "https://x.westeurope-1.ingest.monitor.azure.com",
                "dcr_immutable_id": "dcr-" + "0" * 32,
                "tenant_id": TENANT,
                "client_id": CLIENT_ID,
                "client_secret_env": "X",
                "batch_max_bytes": 1_048_576,
            }
        )


def test_an_event_that_can_never_fit_is_dead_lettered_unsent(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """An event over 1 MB as JSON goes to the dead letters with its size and the limit; the rest arrive."""
    small = events(2)
    (huge,) = big_events(1, 1_100_000, start=500)
    rejected = deliver(make(fake, tls, clock), [small[0], huge, small[1]])
    assert [r.event.id for r in rejected] == [huge.id]
    assert "1 MB" in rejected[0].reason and "can never be sent" in rejected[0].reason
    assert fake.record_ids() == [small[0].id, small[1].id]
    assert all(huge.id.encode() not in r.body for r in fake.ingestion_requests())


def test_413_splits_the_request_until_it_fits(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """A 413 (a gateway counting smaller than we do) halves the request; an event over it alone is dead-lettered."""
    fake.max_request_bytes = 40_000
    batch = big_events(8, 9_000)
    (too_big,) = big_events(1, 50_000, start=50)
    rejected = deliver(make(fake, tls, clock), [*batch[:4], too_big, *batch[4:]])
    assert [r.event.id for r in rejected] == [too_big.id]
    assert "413" in rejected[0].reason and "1 MB" in rejected[0].reason
    assert sorted(fake.record_ids()) == sorted(e.id for e in batch)


def test_field_over_64_kb_is_sent_and_reported(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Limit 64 KB per field: the event is sent (the service keeps a prefix) and the sink logs which column."""
    (event,) = big_events(1, 70_000)
    with capture_logs() as logs:
        assert deliver(make(fake, tls, clock), [event]) == []
    warned = [line for line in logs if line["event"] == "sentinel_field_truncated"]
    assert warned and warned[0]["event_id"] == event.id
    assert set(warned[0]["columns"]) == {"actor", "project", "EventDetails"}


def test_429_waits_retry_after_then_delivers(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Throttled (429 + Retry-After: 7), the sink waits at least 7 s per answer, then delivers once."""
    fake.throttle(2, retry_after=7)
    batch = events(3)
    assert deliver(make(fake, tls, clock), batch) == []
    assert len([s for s in clock.sleeps if s >= 7]) == 2
    assert fake.record_ids() == [e.id for e in batch]


def test_requests_per_minute_window_is_honoured(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Limit requests per minute per DCR: over it the sink waits the Retry-After the window asks, and all arrive."""
    fake.max_requests_per_minute = 3
    batch = events(7)
    assert deliver(make(fake, tls, clock, batch_max_events=1), batch) == []
    assert fake.record_ids() == [e.id for e in batch]
    assert sum(clock.sleeps) >= 120  # two full windows of waiting for 7 requests at 3 a minute


def test_5xx_is_retried_then_delivered(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """503 answers are retried; the batch arrives once."""
    fake.busy(2)
    batch = events(4)
    assert deliver(make(fake, tls, clock), batch) == []
    assert fake.record_ids() == [e.id for e in batch]


def test_one_invalid_record_is_isolated_and_dead_lettered(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """A 400 for one record splits the request; that record is dead-lettered with the API's message."""
    batch = events(8)
    fake.reject_ids.add(batch[5].id)
    rejected = deliver(make(fake, tls, clock), batch)
    assert [r.event.id for r in rejected] == [batch[5].id]
    assert "InvalidPayload" in rejected[0].reason and "x-ms-client-request-id" in rejected[0].reason
    assert sorted(fake.record_ids()) == sorted(e.id for e in batch if e is not batch[5])


# -- configuration errors on the Azure side ----------------------------------------------------


def test_missing_role_is_fatal_and_names_the_role_and_dcr(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """403: the error names Monitoring Metrics Publisher, the DCR id and the client id."""
    fake.role_granted = False
    with pytest.raises(SinkFatalError) as caught:
        deliver(make(fake, tls, clock), events(2))
    text = str(caught.value)
    assert "Monitoring Metrics Publisher" in text and fake.dcr_id in text and CLIENT_ID in text


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"dcr_immutable_id": "dcr-" + "f" * 32}, "dcr_immutable_id"),
        ({"stream": "Custom-NoSuchStream"}, "Custom-NoSuchStream"),
    ],
)
def test_wrong_dcr_or_stream_is_fatal_and_says_which_key(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock, override: dict[str, str], named: str
) -> None:
    """404: the error says to check dcr_immutable_id, stream (a streamDeclarations key) and url."""
    with pytest.raises(SinkFatalError) as caught:
        deliver(make(fake, tls, clock, **override), events(1))
    assert named in str(caught.value) and "streamDeclarations" in str(caught.value)


def test_refused_token_is_fatal_and_mentions_the_audience(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """401 from the ingestion endpoint: the error points at the token's audience and cloud."""
    sink = make(fake, tls, clock)
    sink.open()
    try:
        sink._token()  # the credential caches it; the fake then forgets it
        fake.issued_tokens.clear()
        with pytest.raises(SinkFatalError, match="audience"):
            sink.send(events(1))
    finally:
        sink.close()


# -- Entra ID, through the real azure-identity --------------------------------------------------


def test_wrong_client_secret_is_fatal_and_keeps_the_secret_out(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """Entra ID's AADSTS7000215 stops the sink with a hint on client_secret, never quoting a secret."""
    fake.client_secret = "the-real-one"
    with pytest.raises(SinkFatalError) as caught:
        deliver(make(fake, tls, clock), events(1))
    assert "AADSTS7000215" in str(caught.value) and "client_secret" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_token_endpoint_down_is_retryable(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """No answer from the authority is passing trouble: a retryable error, within the retry budget."""
    fake.entra.stop()
    with pytest.raises(SinkRetryableError, match="no token"):
        deliver(make(fake, tls, clock, retry_max_attempts=3), events(1))
    assert len(clock.sleeps) == 2


def test_the_sdk_does_not_retry_token_requests_by_itself(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """One attempt of ours is one token request: azure-identity's own retries are off."""
    fake.entra.script(Reply(503, b"busy"), Reply(503, b"busy"), path=f"/{TENANT}/oauth2")
    with pytest.raises(SinkRetryableError):
        deliver(make(fake, tls, clock, retry_max_attempts=2), events(1))
    assert len(fake.entra.requests_to(f"/{TENANT}/oauth2/v2.0/token")) == 2
    assert fake.ingestion_requests() == []


def test_workload_identity_signs_in_with_the_federated_token_file(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock, tmp_path: Path
) -> None:
    """auth workload_identity: the token file's content is the client assertion; no secret configured."""
    federated = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl"
    (tmp_path / "azure-identity-token").write_text(federated)
    fake.assertions.add(federated)
    sink = make(
        fake,
        tls,
        clock,
        auth="workload_identity",
        client_secret_file=None,
        token_file=str(tmp_path / "azure-identity-token"),
    )
    assert deliver(sink, events(2)) == []
    assert fake.token_requests[-1]["client_assertion"] == federated
    assert len(fake.records) == 2


def test_certificate_credential_sends_a_signed_assertion(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock, tmp_path: Path
) -> None:
    """auth certificate: azure-identity signs an assertion for the token endpoint with the app's certificate."""
    pem = tmp_path / "app.pem"
    rsa = trustme.KeyType.RSA  # the assertion is signed RS256
    cert = trustme.CA(key_type=rsa).issue_cert("shipper-app", key_type=rsa)
    pem.write_bytes(cert.private_key_pem.bytes() + cert.cert_chain_pems[0].bytes())
    fake.assertions.add("certificate")
    sink = make(
        fake, tls, clock, auth="certificate", client_secret_file=None, certificate_path=str(pem)
    )
    assert deliver(sink, events(1)) == []
    assert fake.token_requests[-1]["client_assertion"].count(".") == 2


def test_sovereign_cloud_asks_for_its_own_audience(tls: tuple[Any, Path], clock: Clock) -> None:
    """cloud us_government: tokens are requested for https://monitor.azure.us/.default."""
    with FakeSentinel(tls[0], client_secret=SECRET, audience="https://monitor.azure.us") as fake:
        assert deliver(make(fake, tls, clock, cloud="us_government"), events(1)) == []
        assert fake.token_requests[-1]["scope"] == "https://monitor.azure.us/.default"


def test_clouds_set_authority_and_scope() -> None:
    """Each cloud names its Entra ID authority host and Azure Monitor audience; overrides win."""
    base = {
        "name": "s",
        "url": "https://x.ingest.monitor.azure.us",
        "dcr_immutable_id": "dcr-" + "a" * 32,
        "auth": "managed_identity",
    }
    gov = SentinelSettings.model_validate({**base, "cloud": "us_government"})
    china = SentinelSettings.model_validate({**base, "cloud": "china"})
    assert (gov.authority, gov.token_scope) == (
        "https://login.microsoftonline.us",
        "https://monitor.azure.us/.default",
    )
    assert (china.authority, china.token_scope) == (
        "https://login.chinacloudapi.cn",
        "https://monitor.azure.cn/.default",
    )
    custom = SentinelSettings.model_validate(
        {**base, "authority_host": "https://login.example/", "scope": "api://x/.default"}
    )
    assert (custom.authority, custom.token_scope) == ("https://login.example", "api://x/.default")


# -- secrets ---------------------------------------------------------------------------------


def test_secrets_never_appear_in_errors_dead_letters_or_logs(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """With a fake that echoes headers, neither the client secret nor a token shows in a reason, error or log."""
    fake.echo = True
    batch = events(4)
    fake.reject_ids.add(batch[1].id)
    with capture_logs() as logs:
        rejected = deliver(make(fake, tls, clock), batch)
        fake.role_granted = False
        with pytest.raises(SinkFatalError) as caught:
            deliver(make(fake, tls, clock), events(1, start=50))
    assert [r.event.id for r in rejected] == [batch[1].id]
    texts = [r.reason for r in rejected] + [str(caught.value), repr(logs)]
    assert "authorization: bearer" in rejected[0].reason.lower()  # the echo reached the reason
    for secret in [SECRET, *fake.issued_tokens]:
        assert all(secret not in text for text in texts)


# -- check -----------------------------------------------------------------------------------


def test_probe_gets_a_token_and_posts_an_empty_array(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """`shipper check`: a token, then `[]` to the stream (nothing stored); the verdict says what was not checked."""
    sink = make(fake, tls, clock)
    try:
        verdict = sink.probe()
    finally:
        sink.close()
    (request,) = fake.ingestion_requests()
    assert request.body == b"[]" and fake.records == []
    assert "accepts this identity" in verdict and "only after sending" in verdict


def test_probe_reports_the_missing_role(
    fake: FakeSentinel, tls: tuple[Any, Path], clock: Clock
) -> None:
    """`shipper check` without the role on the DCR fails naming the role."""
    fake.role_granted = False
    sink = make(fake, tls, clock)
    try:
        with pytest.raises(SinkFatalError, match="Monitoring Metrics Publisher"):
            sink.probe()
    finally:
        sink.close()


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_secret_env": None}, "client_secret_env"),
        ({"tenant_id": None}, "tenant_id"),
        ({"dcr_immutable_id": "my-dcr"}, "dcr_immutable_id"),
        ({"stream": "OpenAIAuditLogs_CL"}, "stream"),
        ({"url": "http://x.ingest.monitor.azure.com"}, "https"),
        ({"authority_host": "http://login.example"}, "authority_host"),
        ({"auth": "managed_identity"}, "client_secret is only used"),
        ({"format": "cef"}, "format"),
        ({"batch_max_bytes": 2_000_000}, "batch_max_bytes"),
    ],
)
def test_invalid_settings_are_rejected(overrides: dict[str, Any], message: str) -> None:
    """Bad config is a clear error naming the key."""
    values: dict[str, Any] = {
        "type": "sentinel",
        "name": "s",
        "url": "https://x.westeurope-1.ingest.monitor.azure.com",
        "dcr_immutable_id": "dcr-" + "0" * 32,
        "tenant_id": TENANT,
        "client_id": CLIENT_ID,
        "client_secret_env": "SENTINEL_SECRET",
    }
    values.update(overrides)
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(ValidationError, match=message):
        SentinelSettings.model_validate(values)
