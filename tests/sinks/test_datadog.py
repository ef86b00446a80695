"""The Datadog Logs sink against a fake intake on a real loopback port: shape, limits, answers."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from structlog.testing import capture_logs

from shipper.config.settings import parse_config, sink_plugins
from shipper.errors import ConfigError, SinkFatalError, SinkRetryableError
from shipper.model.event import AuditEvent, rfc3339_ms
from shipper.testing.contract.events import api_event
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.datadog import FakeDatadog
from sinks.datadog.sink import DatadogSettings, DatadogSink
from tests.sinks import timed

KEY = "dd-test-api-key-5f4e3d2c1b0a"
NOW = 1_760_000_000  # the frozen "now" of the time-window tests
HOUR = 3600


def event(i: int, *, age: float = 60.0, text: str = "ok") -> AuditEvent:
    """An event `age` seconds older than NOW."""
    obj = api_event(i, t=int(NOW - age) - i, text=text)
    return AuditEvent.from_api(obj, organization="acme")


def events(n: int, **kwargs: Any) -> list[AuditEvent]:
    return [event(i, **kwargs) for i in range(n)]


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def dd() -> Iterator[FakeDatadog]:
    fake = FakeDatadog({KEY}, clock=lambda: float(NOW))
    with fake.receiver:
        yield fake


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "dd-key"
    path.write_text(KEY + "\n")
    return path


def make(fake: FakeDatadog, key_file: Path, sleeps: Sleeps | None = None, **kw: Any) -> DatadogSink:
    values: dict[str, Any] = {
        "type": "datadog",
        "name": "dd",
        "url": fake.receiver.url,
        "api_key_file": str(key_file),
        "retry_max_attempts": 4,
    }
    settings = DatadogSettings.model_validate({**values, **kw})
    sink = DatadogSink(settings, sleep=sleeps or Sleeps(), clock=lambda: float(NOW))
    sink.open()
    return sink


# -- shape ----------------------------------------------------------------------------------


def test_each_event_is_one_log_item_with_datadogs_reserved_attributes(
    dd: FakeDatadog, key_file: Path
) -> None:
    """One gzip JSON array to /api/v2/logs: ddsource, service, hostname, ddtags, message (the
    document as JSON text) and the event time in milliseconds; DD-API-KEY authenticates."""
    batch = events(3)
    sink = make(dd, key_file, hostname="shipper-1", tags=["env:prod", "team:secops"])
    assert sink.send(batch) == []
    (request,) = dd.receiver.requests
    assert request.path == "/api/v2/logs"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["dd-api-key"] == KEY
    first = dd.logs[0]
    assert first["ddsource"] == "openai" and first["service"] == "openai-audit-log"
    assert first["hostname"] == "shipper-1"
    assert first["ddtags"].split(",") == [
        "env:prod",
        "team:secops",
        f"event_type:{batch[0].type}",
        "organization:acme",
    ]
    assert json.loads(first["message"]) == batch[0].raw
    assert first["timestamp"] == batch[0].effective_at * 1000
    assert dd.ids() == [e.id for e in batch]


def test_the_site_chooses_the_intake_and_the_key_validation_host() -> None:
    """site = "datadoghq.eu" sends to http-intake.logs.datadoghq.eu and validates on api.datadoghq.eu."""
    settings = DatadogSettings.model_validate(
        {"type": "datadog", "name": "dd", "site": "datadoghq.eu", "api_key_env": "K"}
    )
    assert settings.url == "https://http-intake.logs.datadoghq.eu"
    assert settings.api_base == "https://api.datadoghq.eu"


# -- documented limits ------------------------------------------------------------------------


def test_no_request_carries_more_than_1000_logs(dd: FakeDatadog, key_file: Path) -> None:
    """2,500 events go as 1,000 + 1,000 + 500 (the fake answers 400 to a bigger array)."""
    dd.max_items = 1000
    batch = events(2500)
    assert make(dd, key_file).send(batch) == []
    sizes = [len(r.json()) for r in dd.receiver.requests]
    assert sizes == [1000, 1000, 500]
    assert dd.ids() == [e.id for e in batch]


def test_more_than_1000_logs_per_request_is_a_config_error() -> None:
    """batch_max_events above Datadog's 1,000 is refused, naming the key."""
    message = _config_error({"batch_max_events": 1001})
    assert "batch_max_events" in message and "1000" in message


def test_no_request_is_over_5_mb_uncompressed(dd: FakeDatadog, key_file: Path) -> None:
    """At batch_max_bytes = 5,000,000, 20 logs of ~800 kB each are split so that no request's
    uncompressed body exceeds 5 MB (the fake answers 413 above it, measured after gunzip)."""
    batch = events(20, text="y" * 200_000)
    assert make(dd, key_file, batch_max_bytes=5_000_000).send(batch) == []
    sent = [len(r.body) for r in dd.receiver.requests]  # every request, refused ones included
    assert len(sent) >= 4 and max(sent) <= 5_000_000
    assert sent == dd.payload_sizes  # none was refused with 413
    assert sorted(dd.ids()) == sorted(e.id for e in batch)


def test_a_log_over_1_mb_is_dead_lettered_whole_not_truncated(
    dd: FakeDatadog, key_file: Path
) -> None:
    """An event whose log is over 1 MB comes back refused with the reason; Datadog never gets
    it to truncate; its neighbours are delivered."""
    batch = [event(0), event(1, text="z" * 1_100_000), event(2)]
    rejected = make(dd, key_file).send(batch)
    assert [r.event.id for r in rejected] == [batch[1].id]
    assert "1 MB" in rejected[0].reason and "truncates" in rejected[0].reason
    assert dd.truncated == []
    assert dd.ids() == [batch[0].id, batch[2].id]


# -- the 18-hour window -----------------------------------------------------------------------


@pytest.fixture
def frozen() -> Iterator[None]:
    with freeze_time(dt.datetime.fromtimestamp(NOW, dt.UTC), tick=True):
        yield


def frozen_sink(fake: FakeDatadog, key_file: Path, **kw: Any) -> DatadogSink:
    values = {"type": "datadog", "name": "dd", "url": fake.receiver.url}
    settings = DatadogSettings.model_validate({**values, "api_key_file": str(key_file), **kw})
    sink = DatadogSink(settings, sleep=Sleeps())  # the real clock, frozen by freezegun
    sink.open()
    return sink


def test_a_backfill_older_than_18_hours_is_flagged_never_silently_restamped(
    dd: FakeDatadog, key_file: Path, frozen: None
) -> None:
    """late_events = "flag": a 19-hour-old event goes without `timestamp`, tagged
    shipper_late:true with its real time in event_time; a 1-hour-old one keeps its time; the
    intake never sees a timestamp older than 18 h."""
    old, fresh = event(0, age=19 * HOUR), event(1, age=HOUR)
    with capture_logs() as logs:
        assert frozen_sink(dd, key_file).send([old, fresh]) == []
    late, kept = dd.logs
    assert "timestamp" not in late and "shipper_late:true" in late["ddtags"].split(",")
    assert late["event_time"] == dt.datetime.fromtimestamp(old.effective_at, dt.UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert kept["timestamp"] == fresh.effective_at * 1000
    assert "shipper_late:true" not in kept["ddtags"]
    assert dd.too_old == []
    assert [e["count"] for e in logs if e["event"] == "datadog_late_events_flagged"] == [1]


def test_late_events_refuse_dead_letters_them_with_the_reason(
    dd: FakeDatadog, key_file: Path, frozen: None
) -> None:
    """late_events = "refuse": the 19-hour-old event comes back refused, saying why; the fresh
    one is delivered with its time."""
    old, fresh = event(0, age=19 * HOUR), event(1, age=HOUR)
    rejected = frozen_sink(dd, key_file, late_events="refuse").send([old, fresh])
    assert [r.event.id for r in rejected] == [old.id]
    assert "18 h" in rejected[0].reason and "19.0 h old" in rejected[0].reason
    assert dd.ids() == [fresh.id]


def test_the_window_keeps_a_margin_before_the_18_hour_edge(
    dd: FakeDatadog, key_file: Path, frozen: None
) -> None:
    """An event 17 h 50 min old counts as late (a retry could push it over the edge); one
    17 h 40 min old does not."""
    edge, inside = event(0, age=17 * HOUR + 50 * 60), event(1, age=17 * HOUR + 40 * 60)
    rejected = frozen_sink(dd, key_file, late_events="refuse").send([edge, inside])
    assert [r.event.id for r in rejected] == [edge.id]
    assert dd.logs[0]["timestamp"] == inside.effective_at * 1000


def test_a_compliance_record_lands_at_its_own_time_not_its_files_end(
    dd: FakeDatadog, key_file: Path, frozen: None
) -> None:
    """`timestamp` of a compliance record is its own time in milliseconds, not its log file's
    end time; an audit event's stays `effective_at` * 1000."""
    compliance, audit = timed.record(NOW - 60), event(1)
    assert frozen_sink(dd, key_file).send([compliance, audit]) == []
    record_log, audit_log = dd.logs
    assert record_log["timestamp"] == timed.own_time_ms(NOW - 60) != compliance.effective_at * 1000
    assert audit_log["timestamp"] == audit.effective_at * 1000


def test_the_18_hour_window_is_judged_on_the_records_own_time(
    dd: FakeDatadog, key_file: Path, frozen: None
) -> None:
    """A record from a file that ended a minute ago but that happened 19 h ago is late: flagged
    with its own time in event_time, or refused saying how old it is; one that happened 17 h
    40 min ago in a file that ended 18 h 30 min ago is not late."""
    old = timed.record(NOW - 60, own_ms=(NOW - 19 * HOUR) * 1000 + 500)
    inside = timed.record(NOW - 18 * HOUR - 30 * 60, own_ms=(NOW - 17 * HOUR - 40 * 60) * 1000, n=1)
    assert frozen_sink(dd, key_file).send([old, inside]) == []
    late, kept = dd.logs
    assert "timestamp" not in late and "shipper_late:true" in late["ddtags"].split(",")
    assert late["event_time"] == rfc3339_ms((NOW - 19 * HOUR) * 1000 + 500)
    assert kept["timestamp"] == (NOW - 17 * HOUR - 40 * 60) * 1000
    assert "shipper_late:true" not in kept["ddtags"] and dd.too_old == []
    rejected = frozen_sink(dd, key_file, late_events="refuse").send([old, inside])
    assert [r.event.id for r in rejected] == [old.id]
    assert "19.0 h old" in rejected[0].reason


# -- answers -------------------------------------------------------------------------------


def test_429_is_retried_honouring_retry_after(dd: FakeDatadog, key_file: Path) -> None:
    """Two 429s with Retry-After: 7, then 202: delivered, and each wait was at least 7 s."""
    dd.throttle(2, retry_after=7)
    sleeps = Sleeps()
    batch = events(3)
    assert make(dd, key_file, sleeps).send(batch) == []
    assert dd.ids() == [e.id for e in batch]
    assert len(sleeps.calls) == 2 and min(sleeps.calls) >= 7


@pytest.mark.parametrize("status", [500, 503, 408])
def test_a_passing_server_error_is_retried(dd: FakeDatadog, key_file: Path, status: int) -> None:
    """500, 503 and 408 are sent again until Datadog answers 202."""
    dd.fail(2, status)
    batch = events(2)
    assert make(dd, key_file).send(batch) == []
    assert dd.ids() == [e.id for e in batch]


def test_a_400_is_isolated_to_the_event_behind_it(dd: FakeDatadog, key_file: Path) -> None:
    """Datadog names no item in a 400: the batch is halved until the one refused event is found;
    it is dead-lettered with Datadog's answer, the rest delivered."""
    batch = events(8)
    dd.reject_ids.add(batch[5].id)
    rejected = make(dd, key_file).send(batch)
    assert [r.event.id for r in rejected] == [batch[5].id]
    assert "HTTP 400" in rejected[0].reason and "malformed" in rejected[0].reason
    assert sorted(dd.ids()) == sorted(e.id for e in batch if e is not batch[5])


def test_a_413_splits_the_request(dd: FakeDatadog, key_file: Path) -> None:
    """A 413 (a proxy with a smaller limit, say) halves the batch; every event is delivered."""
    dd.receiver.script(Reply.json(413, {"errors": ["Payload too large"]}))
    batch = events(6)
    assert make(dd, key_file).send(batch) == []
    assert sorted(dd.ids()) == sorted(e.id for e in batch)


def test_a_refused_key_stops_the_sink_naming_the_site(dd: FakeDatadog, tmp_path: Path) -> None:
    """403 is fatal: the message says the key is wrong, revoked or from another site."""
    wrong = tmp_path / "wrong"
    wrong.write_text("dd-wrong-key-000000000000")
    with pytest.raises(SinkFatalError) as caught:
        make(dd, wrong, retry_max_attempts=1).send(events(1))
    assert "another Datadog site" in str(caught.value) and "datadoghq.com" in str(caught.value)
    assert "dd-wrong-key-000000000000" not in str(caught.value)


def test_a_401_says_no_key_arrived(dd: FakeDatadog, key_file: Path) -> None:
    """401 (a proxy stripped the header, say) is fatal and names the keys to set."""
    dd.receiver.script(Reply.json(401, {"errors": ["Unauthorized"]}))
    with pytest.raises(SinkFatalError, match="api_key_env or api_key_file"):
        make(dd, key_file).send(events(1))


def test_the_key_never_appears_in_errors_logs_or_dead_letters(
    dd: FakeDatadog, key_file: Path
) -> None:
    """Datadog echoing the key in a 400 body and a 503 body: no reason, log line or error holds it."""
    echo = Reply(400, f"bad payload for key {KEY}".encode())
    batch = events(2)
    dd.reject_ids.add(batch[0].id)
    dd.receiver.script(echo, echo)
    with capture_logs() as logs:
        rejected = make(dd, key_file).send(batch)
        dd.receiver.script(*[Reply(503, f"down {KEY}".encode())] * 10)
        with pytest.raises(SinkRetryableError) as caught:
            make(dd, key_file, retry_max_attempts=2).send(events(1, age=5))
    assert KEY not in str(caught.value)
    assert all(KEY not in r.reason for r in rejected)
    assert KEY not in repr(logs)


def test_an_unreachable_intake_is_retryable(key_file: Path) -> None:
    """Nothing listening: SinkRetryableError once the retries are spent."""
    settings = DatadogSettings.model_validate(
        {
            "type": "datadog",
            "name": "dd",
            "url": "http://127.0.0.1:9",
            "api_key_file": str(key_file),
            "retry_max_attempts": 2,
        }
    )
    sink = DatadogSink(settings, sleep=Sleeps())
    with pytest.raises(SinkRetryableError):
        sink.send(events(1))
    sink.close()


# -- check ---------------------------------------------------------------------------------


def test_check_validates_the_key_and_reaches_the_intake_sending_no_log(
    dd: FakeDatadog, key_file: Path
) -> None:
    """probe() asks /api/v1/validate and GETs the intake: a verdict, and no log stored."""
    verdict = make(dd, key_file).probe()
    assert "API key valid" in verdict and "reachable" in verdict
    assert dd.logs == []
    assert [r.method for r in dd.receiver.requests] == ["GET", "GET"]


def test_check_with_a_wrong_key_is_fatal(dd: FakeDatadog, tmp_path: Path) -> None:
    """/api/v1/validate answering 403 makes check fail, saying what to fix."""
    wrong = tmp_path / "wrong"
    wrong.write_text("dd-wrong-key-111111111111")
    with pytest.raises(SinkFatalError, match="refused the API key"):
        make(dd, wrong).probe()


# -- configuration ---------------------------------------------------------------------------


def _config_error(keys: dict[str, Any]) -> str:
    raw = {"type": "datadog", "name": "dd", "api_key_env": "DD_KEY", **keys}
    with pytest.raises(ConfigError) as caught:
        parse_config({"source": {}, "sinks": [raw]}, "x.toml", sink_plugins())
    return str(caught.value)


@pytest.mark.parametrize(
    ("keys", "names"),
    [
        ({"site": "datadoghq.org"}, "site"),
        ({"tags": ["env:prod,team:x"]}, "tags"),
        ({"url": "https://http-intake.logs.datadoghq.com/api/v2/logs"}, "url"),
        ({"batch_max_bytes": 6_000_000}, "batch_max_bytes"),
        ({"format": "cef"}, "format"),
        ({"late_events": "restamp"}, "late_events"),
    ],
)
def test_bad_config_names_the_table_and_key(keys: dict[str, Any], names: str) -> None:
    """Each wrong key is a ConfigError naming the sink's table and that key."""
    message = _config_error(keys)
    assert f"sinks[0].{names}" in message


def test_a_missing_api_key_names_both_ways_to_give_it() -> None:
    """Without api_key_env/api_key_file the error says to set one of them."""
    raw = {"type": "datadog", "name": "dd"}
    with pytest.raises(ConfigError, match="api_key_env or api_key_file"):
        parse_config({"source": {}, "sinks": [raw]}, "x.toml", sink_plugins())
