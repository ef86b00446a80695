"""The Google SecOps sink against the fake Chronicle API, with the real google-auth token exchange."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from shipper.config.settings import parse_config
from shipper.errors import ConfigError, SinkFatalError, SinkRetryableError
from shipper.model.event import AuditEvent, ComplianceRecord, rfc3339_ms
from shipper.pipeline.sink import SinkContext
from shipper.secrets import SecretUnavailableError
from shipper.testing.contract.events import api_event, events
from shipper.testing.receivers.base import Recorded, Reply
from shipper.testing.receivers.secops import FakeSecOps
from sinks.secops import protocol
from sinks.secops.settings import SecOpsSettings
from sinks.secops.sink import SecOpsSink
from tests.sinks import timed

IMPORT = "/logs:import"


class Sleeps(list[float]):
    """An injected sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def _google() -> Iterator[FakeSecOps]:
    with FakeSecOps(log_types={"OPENAI_AUDITLOG", "CHATGPT_COMPLIANCE"}) as fake:
        yield fake


@pytest.fixture
def google(_google: FakeSecOps) -> FakeSecOps:
    """One server per module; every test starts with no logs, no faults and default limits."""
    _google.reset()
    _google.receiver.clear_script()
    _google.max_logs, _google.max_request_bytes = 1000, 1_000_000
    return _google


@pytest.fixture
def key_file(google: FakeSecOps, tmp_path: Path) -> Path:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(google.new_account()), encoding="utf-8")
    return path


_opened: list[SecOpsSink] = []


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def settings(google: FakeSecOps, key_file: Path, **overrides: Any) -> SecOpsSettings:
    values: dict[str, Any] = {
        "type": "secops",
        "name": "secops",
        "url": google.url,
        "project": google.project,
        "region": google.location,
        "instance": google.instance,
        "credentials_file": str(key_file),
        "retry_max_attempts": 4,
    }
    return SecOpsSettings.model_validate({**values, **overrides})


def make_sink(
    google: FakeSecOps,
    key_file: Path,
    sleeps: Sleeps | None = None,
    clock: dt.datetime | None = None,
    **overrides: Any,
) -> SecOpsSink:
    """An opened sink (closed after the test) with a recording sleep and, if given, a fixed clock."""
    now = clock or dt.datetime.now(dt.UTC)
    sink = SecOpsSink(
        settings(google, key_file, **overrides),
        SinkContext(state_dir=Path("/nonexistent")),
        sleep=Sleeps() if sleeps is None else sleeps,
        clock=lambda: now,
    )
    _opened.append(sink)
    sink.open()
    return sink


def sized(index: int, size: int) -> AuditEvent:
    """An audit event whose JSON is about `size` bytes (the text appears in four fields)."""
    return AuditEvent.from_api(api_event(index, text="x" * (size // 4)))


def parse(rfc3339: str) -> dt.datetime:
    return dt.datetime.fromisoformat(rfc3339)


def imports(google: FakeSecOps) -> list[Recorded]:
    return [r for r in google.receiver.requests if r.path.endswith(IMPORT)]


# -- what arrives ---------------------------------------------------------------------------------


def test_audit_events_arrive_as_the_api_object_under_openai_auditlog(
    google: FakeSecOps, key_file: Path
) -> None:
    """Each audit event is one log of type OPENAI_AUDITLOG whose data is the API object's JSON."""
    batch = events(3)
    collected = dt.datetime(2030, 1, 2, 3, 4, 5, 123456, dt.UTC)
    sink = make_sink(google, key_file, clock=collected, namespace="prod", labels={"org": "acme"})
    assert sink.send(batch) == []
    assert [log.log_type for log in google.logs] == ["OPENAI_AUDITLOG"] * 3
    for log, event in zip(google.logs, batch, strict=True):
        assert log.data == event.json
        assert log.log_entry_time == event.timestamp
        assert log.collection_time == "2030-01-02T03:04:05.123456Z"
        assert log.namespace == "prod"
        assert log.labels == {"org": {"value": "acme"}}
    (request,) = imports(google)
    assert request.path == (
        f"/v1beta/projects/{google.project}/locations/us/instances/{google.instance}"
        "/logTypes/OPENAI_AUDITLOG/logs:import"
    )
    assert request.headers["authorization"].startswith("Bearer ya29.")
    assert set(request.json()) == {"inlineSource"}


def test_compliance_records_go_under_the_configured_log_type(
    google: FakeSecOps, key_file: Path
) -> None:
    """ChatGPT compliance records are imported under compliance_log_type, audit events beside them."""
    record = ComplianceRecord("evt-1", "CONVERSATION_MESSAGE", 1_720_000_000, {"event_id": "evt-1"})
    audit = events(1)[0]
    sink = make_sink(google, key_file, compliance_log_type="CHATGPT_COMPLIANCE")
    assert sink.send([record, audit]) == []
    assert {
        (log.log_type, log.json().get("event_id") or log.json()["id"]) for log in google.logs
    } == {
        ("CHATGPT_COMPLIANCE", "evt-1"),
        ("OPENAI_AUDITLOG", audit.id),
    }


def test_a_compliance_record_lands_at_its_own_time_not_its_files_end(
    google: FakeSecOps, key_file: Path
) -> None:
    """`logEntryTime` of a compliance record is the record's own time (to the millisecond), not
    the end time of its log file; an audit event's stays its `effective_at`."""
    file_end = 1_720_000_000
    record, audit = timed.record(file_end), events(1)[0]
    sink = make_sink(google, key_file, compliance_log_type="CHATGPT_COMPLIANCE")
    assert sink.send([record, audit]) == []
    times = {
        log.json().get("event_id") or log.json()["id"]: log.log_entry_time for log in google.logs
    }
    own = dt.datetime.fromtimestamp(timed.own_time_ms(file_end) / 1000, dt.UTC)
    assert parse(times[record.id]) == own != dt.datetime.fromtimestamp(file_end, dt.UTC)
    assert times[record.id] == "2024-07-03T09:34:05.250000Z"
    assert times[audit.id] == rfc3339_ms(audit.effective_at * 1000)


def test_compliance_records_without_a_log_type_stop_the_sink_naming_the_key(
    google: FakeSecOps, key_file: Path
) -> None:
    """A compliance record with no compliance_log_type set is a fatal error naming that key."""
    record = ComplianceRecord("evt-1", "AUTH_LOG", 1_720_000_000, {"event_id": "evt-1"})
    with pytest.raises(SinkFatalError, match="compliance_log_type"):
        make_sink(google, key_file).send([record])
    assert imports(google) == []


# -- limits ---------------------------------------------------------------------------------------


def test_request_size_limit_is_kept(google: FakeSecOps, key_file: Path) -> None:
    """2.5 MB of events go in several requests each within 1 MB: Google never refuses one for size."""
    batch = [sized(i, 5000) for i in range(500)]
    assert make_sink(google, key_file).send(batch) == []
    assert google.refusals == []
    assert len(google.import_sizes) >= 3
    assert all(size <= 1_000_000 for size, _ in google.import_sizes)
    assert google.event_ids() == [e.id for e in batch]


def test_log_count_limit_is_kept(google: FakeSecOps, key_file: Path) -> None:
    """With a 20-log limit, 45 events go as 20 + 20 + 5: no request is refused for its count."""
    google.max_logs = 20
    batch = events(45)
    assert make_sink(google, key_file, batch_max_events=20).send(batch) == []
    assert google.refusals == []
    assert [count for _, count in google.import_sizes] == [20, 20, 5]


def test_a_log_over_the_documented_1_mb_goes_to_the_dead_letters(
    google: FakeSecOps, key_file: Path
) -> None:
    """An event over 1 MB is refused before sending, with the reason; the rest are imported."""
    huge, small = sized(1, 1_100_000), events(2, start=10)
    rejected = make_sink(google, key_file, batch_max_bytes=4_000_000).send([huge, *small])
    assert [r.event.id for r in rejected] == [huge.id]
    assert "1 MB" in rejected[0].reason and "never be imported" in rejected[0].reason
    assert google.refusals == []
    assert google.event_ids() == [e.id for e in small]


def test_an_event_no_request_can_carry_goes_to_the_dead_letters(
    google: FakeSecOps, key_file: Path
) -> None:
    """An event under 1 MB whose base64 log exceeds batch_max_bytes is dead-lettered, not sent."""
    big = sized(1, 900_000)  # 1.2 MB as base64
    rejected = make_sink(google, key_file).send([big, *events(2, start=10)])
    assert [r.event.id for r in rejected] == [big.id]
    assert "batch_max_bytes" in rejected[0].reason
    assert google.refusals == []
    assert len(google.event_ids()) == 2


def test_an_event_stamped_in_the_future_keeps_collection_time_after_entry_time(
    google: FakeSecOps, key_file: Path
) -> None:
    """Google requires collectionTime after logEntryTime: an event ahead of our clock still imports."""
    (event,) = events(1)
    behind = dt.datetime.fromtimestamp(event.effective_at - 60, dt.UTC)
    assert make_sink(google, key_file, clock=behind).send([event]) == []
    assert google.refusals == []
    (log,) = google.logs
    assert parse(log.collection_time) > parse(log.log_entry_time)


def test_collection_time_rule_is_what_the_fake_enforces() -> None:
    """The encoder's times satisfy the rule for an event at, before and after the collection instant."""
    (event,) = events(1)
    at = dt.datetime.fromtimestamp(event.effective_at, dt.UTC)
    for collected in (at, at - dt.timedelta(hours=1), at + dt.timedelta(seconds=1)):
        entry, collection = protocol.entry_times(event, collected)
        assert parse(collection) > parse(entry)


# -- retries and refusals ---------------------------------------------------------------------------


def test_throttling_is_retried_honouring_retry_after(google: FakeSecOps, key_file: Path) -> None:
    """429 RESOURCE_EXHAUSTED with Retry-After: 7 is waited out (at least 7 s each time), then imported."""
    google.throttle(2, retry_after="7")
    sleeps = Sleeps()
    batch = events(3)
    assert make_sink(google, key_file, sleeps).send(batch) == []
    assert [s >= 7 for s in sleeps] == [True, True]
    assert google.event_ids() == [e.id for e in batch]


def test_unavailable_is_retried(google: FakeSecOps, key_file: Path) -> None:
    """503 UNAVAILABLE twice, then accepted: every event arrives once."""
    google.unavailable(2)
    sleeps = Sleeps()
    batch = events(4)
    assert make_sink(google, key_file, sleeps).send(batch) == []
    assert len(sleeps) == 2
    assert google.event_ids() == [e.id for e in batch]


def test_throttling_that_outlasts_the_budget_is_a_retryable_error(
    google: FakeSecOps, key_file: Path
) -> None:
    """429 on every attempt ends in SinkRetryableError after the configured attempts (cursor stays)."""
    google.throttle(100)
    with pytest.raises(SinkRetryableError):
        make_sink(google, key_file, retry_max_attempts=3).send(events(2))
    assert google.logs == []


def test_a_refused_event_is_isolated_and_dead_lettered_with_googles_reason(
    google: FakeSecOps, key_file: Path
) -> None:
    """A 400 INVALID_ARGUMENT caused by one event dead-letters that event; its siblings arrive."""
    batch = events(8)
    google.reject(batch[5].id)
    rejected = make_sink(google, key_file).send(batch)
    assert [r.event.id for r in rejected] == [batch[5].id]
    assert "INVALID_ARGUMENT" in rejected[0].reason
    assert sorted(google.event_ids()) == sorted(e.id for e in batch if e is not batch[5])


def test_permission_denied_names_the_permission(google: FakeSecOps, tmp_path: Path) -> None:
    """403: the service account lacks chronicle.logs.import; the error says which role to grant where."""
    key = tmp_path / "reader.json"
    key.write_text(
        json.dumps(google.new_account("reader@p.iam.gserviceaccount.com", importer=False))
    )
    with pytest.raises(SinkFatalError, match=r"403 PERMISSION_DENIED.*chronicle\.logs\.import"):
        make_sink(google, key).send(events(1))


def test_unknown_instance_is_explained(google: FakeSecOps, key_file: Path) -> None:
    """404: a wrong instance (customer id) says to check project, region, instance and log type."""
    sink = make_sink(google, key_file, instance="00000000-0000-0000-0000-000000000000")
    with pytest.raises(SinkFatalError, match="instance \\(the customer id\\)"):
        sink.send(events(1))


def test_unknown_log_type_is_explained(google: FakeSecOps, key_file: Path) -> None:
    """404 for a log type that does not exist says a custom log type must be created first."""
    sink = make_sink(google, key_file, log_type="NO_SUCH_TYPE")
    with pytest.raises(SinkFatalError, match=r"'NO_SUCH_TYPE'.*created"):
        sink.send(events(1))


def test_a_revoked_token_is_replaced_once(google: FakeSecOps, key_file: Path) -> None:
    """A 401 on a cached token gets one new token from the token endpoint, and the import goes through."""
    sink = make_sink(google, key_file)
    sink.send(events(1))
    issued = google.tokens_issued
    google.revoke_tokens()
    assert sink.send(events(1, start=5)) == []
    assert google.tokens_issued == issued + 1
    assert len(google.logs) == 2


def test_a_token_google_keeps_refusing_is_fatal(google: FakeSecOps, key_file: Path) -> None:
    """401 even with a fresh token: fatal, saying the key was revoked and a new one is needed."""
    google.receiver.script(
        *[Reply.json(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})] * 2,
        path="/v1beta/",
    )
    with pytest.raises(SinkFatalError, match="did not accept the access token"):
        make_sink(google, key_file).send(events(1))


# -- the token exchange ---------------------------------------------------------------------------


def test_one_token_serves_many_requests(google: FakeSecOps, key_file: Path) -> None:
    """google-auth's token is cached: three sends of three requests each cost one token exchange."""
    before = google.tokens_issued
    sink = make_sink(google, key_file, batch_max_events=2)
    for start in (0, 10, 20):
        sink.send(events(5, start=start))
    assert google.tokens_issued == before + 1
    assert len(imports(google)) == 9


def test_the_token_endpoint_is_retried_by_the_sink_alone(
    google: FakeSecOps, key_file: Path
) -> None:
    """A busy token endpoint (503) is retried through the sink's own back-off, not google-auth's."""
    google.throttle_tokens(2)
    sleeps = Sleeps()
    assert make_sink(google, key_file, sleeps).send(events(1)) == []
    assert len(sleeps) == 2  # google-auth's own loop would have slept itself and recorded none
    assert len(google.logs) == 1


def test_a_key_google_does_not_know_is_fatal(google: FakeSecOps, tmp_path: Path) -> None:
    """A key whose signature does not match the account's is invalid_grant: fatal, saying to make a new key."""
    info = google.new_account("rotated@p.iam.gserviceaccount.com")
    google.new_account("rotated@p.iam.gserviceaccount.com")  # the account's key was replaced
    key = tmp_path / "old.json"
    key.write_text(json.dumps(info))
    with pytest.raises(SinkFatalError, match=r"invalid_grant.*create a new key"):
        make_sink(google, key).send(events(1))


# -- secrets --------------------------------------------------------------------------------------


def test_key_and_tokens_never_reach_logs_errors_or_dead_letters(
    google: FakeSecOps, tmp_path: Path
) -> None:
    """A receiver echoing the bearer token and key back: rejections, errors and logs hold neither."""
    info = google.new_account("echo@p.iam.gserviceaccount.com")
    key = tmp_path / "echo.json"
    key.write_text(json.dumps(info))

    def echo(request: Recorded) -> Reply:
        body = f"bad {request.headers.get('authorization')} {info['private_key']}"
        return Reply(400, body.encode(), {"content-type": "text/plain"})

    batch = events(2)
    with capture_logs() as logs:
        sink = make_sink(google, key)
        sink.send(batch[:1])  # a token is issued and used
        google.receiver.script(echo, echo, path="/v1beta/")
        google.receiver.script(Reply.json(200, {}), path="/v1beta/")
        rejected = list(sink.send(batch))
        google.throttle(100)
        with pytest.raises(SinkRetryableError) as failure:
            sink.send(events(1, start=50))
    tokens = [r.headers["authorization"].split()[1] for r in imports(google)]
    texts = [str(failure.value), *(r.reason for r in rejected), *(repr(line) for line in logs)]
    secrets_ = [*tokens, *info["private_key"].splitlines()[1:-1], info["private_key_id"]]
    for text in texts:
        for secret in secrets_:
            assert secret not in text
    assert rejected and "***" in rejected[0].reason


def test_an_unusable_key_file_is_a_fatal_error_naming_the_key(
    google: FakeSecOps, tmp_path: Path
) -> None:
    """Not JSON, or JSON without private_key: the error names [[sinks]] "secops": credentials_file."""
    key = tmp_path / "bad.json"
    for text in ("not json", json.dumps({"type": "service_account", "client_email": "a@b"})):
        key.write_text(text)
        with pytest.raises(SinkFatalError, match=r'\[\[sinks\]\] "secops": credentials_file'):
            make_sink(google, key)


def test_an_unset_credentials_variable_names_the_key(
    google: FakeSecOps, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """credentials_env pointing at an unset variable is a config error naming the key, not the secret."""
    monkeypatch.delenv("SECOPS_KEY_UNSET", raising=False)
    sink = SecOpsSink(
        settings(google, key_file, credentials_file=None, credentials_env="SECOPS_KEY_UNSET")
    )
    with pytest.raises(SecretUnavailableError, match="credentials_env"):
        sink.open()


def test_a_key_in_a_variable_works(
    google: FakeSecOps, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """credentials_env holding the key's JSON authenticates like the file does."""
    monkeypatch.setenv("SECOPS_KEY", key_file.read_text())
    sink = make_sink(google, key_file, credentials_file=None, credentials_env="SECOPS_KEY")
    assert sink.send(events(1)) == []


# -- configuration --------------------------------------------------------------------------------


def test_config_errors_name_the_table_and_key() -> None:
    """A secops table without project, or with format = ecs, is a ConfigError naming sinks[0] and the key."""
    base = {"type": "secops", "name": "g", "region": "us", "instance": "abc"}
    base["credentials_env"] = "K"
    with pytest.raises(ConfigError, match=r"sinks\[0\]\.project"):
        parse_config({"sinks": [base]}, "shipper.toml")
    with pytest.raises(ConfigError, match=r"sinks\[0\]"):
        parse_config({"sinks": [{**base, "project": "my-project", "format": "ecs"}]}, "x.toml")


def test_the_regional_endpoint_is_the_default_url() -> None:
    """region = europe-west2 without url targets https://europe-west2-chronicle.googleapis.com."""
    s = SecOpsSettings.model_validate(
        {"name": "g", "project": "my-project", "region": "europe-west2", "instance": "abc"}
        | {"credentials_env": "K"}
    )
    assert s.url == "https://europe-west2-chronicle.googleapis.com"
    with pytest.raises(ValidationError):
        SecOpsSettings.model_validate(
            {"name": "g", "project": "p", "region": "us", "instance": "abc", "credentials_env": "K"}
        )


def test_gzip_bodies_are_accepted_and_measured_decoded(google: FakeSecOps, key_file: Path) -> None:
    """compression = gzip sends a compressed body; the fake applies the size limit to what it decodes."""
    batch = events(5)
    assert make_sink(google, key_file, compression="gzip").send(batch) == []
    (request,) = imports(google)
    assert request.headers["content-encoding"] == "gzip"
    assert google.event_ids() == [e.id for e in batch]
    assert base64.b64decode(request.json()["inlineSource"]["logs"][0]["data"]) == batch[0].json


# -- check ----------------------------------------------------------------------------------------


def test_check_gets_a_token_and_reads_the_log_type_without_importing(
    google: FakeSecOps, key_file: Path
) -> None:
    """probe(): a token for the account and the log type read back; nothing is imported."""
    verdict = make_sink(google, key_file).probe()
    assert "token issued to shipper@" in verdict
    assert "log type OPENAI_AUDITLOG exists" in verdict
    assert imports(google) == []


def test_check_without_read_access_still_passes_and_says_what_it_could_not_see(
    google: FakeSecOps, tmp_path: Path
) -> None:
    """An account that may import but not read log types passes check, which says import is unverified."""
    key = tmp_path / "k.json"
    key.write_text(json.dumps(google.new_account("w@p.iam.gserviceaccount.com", reader=False)))
    verdict = make_sink(google, key).probe()
    assert "not checked" in verdict and "chronicle.logTypes.get" in verdict


def test_check_reports_a_wrong_instance_and_an_unreachable_api(
    google: FakeSecOps, key_file: Path
) -> None:
    """A wrong instance is fatal with the 404's meaning; an API that is down is retryable."""
    with pytest.raises(SinkFatalError, match="404"):
        make_sink(google, key_file, instance="wrong-instance").probe()
    sink = make_sink(google, key_file)
    with google.receiver.down(), pytest.raises(SinkRetryableError):
        sink.probe()


def test_check_reports_a_refused_key(google: FakeSecOps, tmp_path: Path) -> None:
    """A key for an account Google does not know fails check with invalid_grant explained."""
    info = google.new_account("gone@p.iam.gserviceaccount.com")
    info["client_email"] = "unknown@p.iam.gserviceaccount.com"
    key = tmp_path / "k.json"
    key.write_text(json.dumps(info))
    with pytest.raises(SinkFatalError, match="account not found"):
        make_sink(google, key).probe()
