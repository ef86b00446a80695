"""The Elasticsearch sink against a fake Elasticsearch that answers as the `_bulk` docs describe."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.http.isolate import in_a_row_limit
from shipper.model.event import AuditEvent, normalize
from shipper.pipeline.sink import Sink, SinkContext
from shipper.render import document_renderer
from shipper.secrets import SecretUnavailableError
from shipper.testing.contract.events import HOSTILE, api_event, events
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.elasticsearch import DEFAULT_INDEX, FakeElasticsearch, es_error
from sinks.elasticsearch.bulk import bulk_body, encode_entry
from sinks.elasticsearch.settings import ElasticsearchSettings
from sinks.elasticsearch.sink import MAX_REFUSALS, ElasticsearchSink, plugin
from tests.sinks import timed

API_KEY = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
PASSWORD = "correct-horse-battery-staple"


class Sleeps(list[float]):
    """An injected sleep that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def _cluster() -> Iterator[FakeElasticsearch]:
    with FakeElasticsearch() as fake:
        yield fake


@pytest.fixture
def es(_cluster: FakeElasticsearch) -> FakeElasticsearch:
    """One server per module (stopping one takes a while); every test starts from an empty cluster."""
    _cluster.reset()
    return _cluster


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


_opened: list[ElasticsearchSink] = []


@pytest.fixture(autouse=True)
def _close_sinks() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def make_sink(url: str, sleeps: Sleeps | None = None, **overrides: Any) -> ElasticsearchSink:
    """An opened sink (closed after the test) with a small retry budget and a recording sleep."""
    values = {"name": "es", "url": url, "format": "normalized", "retry_max_attempts": 4}
    settings = ElasticsearchSettings.model_validate({**values, **overrides})
    sink = ElasticsearchSink(
        settings,
        SinkContext(state_dir=Path("/nonexistent")),
        sleep=Sleeps() if sleeps is None else sleeps,
    )
    _opened.append(sink)
    sink.open()
    return sink


def expected_doc(event: AuditEvent) -> dict[str, Any]:
    """What Elasticsearch should hold: the normalized document, plus @timestamp, after a JSON round trip."""
    return {"@timestamp": event.timestamp, **orjson.loads(orjson.dumps(normalize(event)))}


def bulk_items(request_body: bytes) -> list[dict[str, Any]]:
    lines = request_body.split(b"\n")
    assert lines[-1] == b"", "the body must end with a newline"
    return [orjson.loads(line) for line in lines[:-1:2]]


# -- documents ----------------------------------------------------------------------------------


def test_documents_arrive_field_by_field_with_timestamp_and_event_id(es: FakeElasticsearch) -> None:
    """Each event becomes one document with _id = event id, @timestamp from effective_at, every field kept."""
    batch = events(3)
    assert make_sink(es.url).send(batch) == []
    stored = es.docs()
    assert list(stored) == [e.id for e in batch]
    for event in batch:
        assert stored[event.id] == expected_doc(event)
        assert stored[event.id]["@timestamp"] == event.timestamp
        assert stored[event.id]["@timestamp"].endswith("Z")
    (request,) = es.bulk_requests()
    assert request.path == "/_bulk"
    assert request.headers["content-type"] == "application/x-ndjson"
    assert bulk_items(request.body) == [
        {"create": {"_index": DEFAULT_INDEX, "_id": e.id}} for e in batch
    ]


def test_raw_format_keeps_the_api_object_and_does_not_mutate_the_event(
    es: FakeElasticsearch,
) -> None:
    """format=raw stores the API object plus @timestamp; the event's own raw dict is left untouched."""
    (event,) = events(1)
    before = orjson.dumps(event.raw)
    make_sink(es.url, format="raw").send([event])
    assert es.docs()[event.id] == {"@timestamp": event.timestamp, **orjson.loads(before)}
    assert orjson.dumps(event.raw) == before


@pytest.mark.parametrize("fmt", ["ecs", "ocsf", "normalized", "raw"])
def test_every_allowed_format_is_stored_as_rendered_with_a_timestamp(
    es: FakeElasticsearch, fmt: str
) -> None:
    """Each allowed format lands as its renderer's document; @timestamp is the renderer's or effective_at's."""
    batch = events(3)
    assert make_sink(es.url, format=fmt).send(batch) == []
    render = document_renderer(fmt)
    for event in batch:
        rendered = orjson.loads(orjson.dumps(render(event)))
        stored = es.docs()[event.id]
        assert stored == {"@timestamp": event.timestamp, **rendered}
        assert stored["@timestamp"] == rendered.get("@timestamp", event.timestamp)


@pytest.mark.parametrize("fmt", ["raw", "normalized", "ecs"])
def test_a_compliance_record_lands_at_its_own_time_not_its_files_end(
    es: FakeElasticsearch, fmt: str
) -> None:
    """A compliance record's `@timestamp` is its own time (milliseconds kept), not its log
    file's end time: added by the sink to raw and normalized documents, ECS's own otherwise; an
    audit event's added `@timestamp` stays its `effective_at`."""
    file_end = 1_720_000_000
    record, (audit,) = timed.record(file_end), events(1)
    assert make_sink(es.url, format=fmt).send([record, audit]) == []
    stored = es.docs()
    own = dt.datetime.fromtimestamp(timed.own_time_ms(file_end) / 1000, dt.UTC)
    assert dt.datetime.fromisoformat(stored[record.id]["@timestamp"]) == own
    assert stored[record.id]["@timestamp"] != record.timestamp
    if fmt != "ecs":
        assert stored[audit.id]["@timestamp"] == audit.timestamp


def test_custom_index_and_pipeline_are_used(es: FakeElasticsearch) -> None:
    """`index` names the target in every action line; `pipeline` is passed as the query parameter."""
    es.pipelines.add("geoip-audit")
    batch = events(2)
    make_sink(es.url, index="openai-audit", pipeline="geoip-audit").send(batch)
    assert set(es.docs("openai-audit")) == {e.id for e in batch}
    (request,) = es.bulk_requests()
    assert request.query == {"pipeline": ["geoip-audit"]}


# -- idempotence and per-item answers -----------------------------------------------------------


def test_replay_is_counted_as_delivered_without_duplicates(es: FakeElasticsearch) -> None:
    """Re-sending a batch gets per-item 409s: nothing rejected, nothing stored twice, logged as already present."""
    batch = events(5)
    sink = make_sink(es.url)
    sink.send(batch)
    with capture_logs() as logs:
        assert sink.send(batch) == []
    assert es.created == [e.id for e in batch]
    assert es.conflicts == 5
    (summary,) = [log for log in logs if log["event"] == "elasticsearch_batch"]
    assert (summary["created"], summary["already_present"], summary["rejected"]) == (0, 5, 0)


def test_item_429_is_retried_alone_until_it_succeeds(es: FakeElasticsearch, sleeps: Sleeps) -> None:
    """A per-item 429 es_rejected_execution_exception re-sends only that item, with backoff, until created."""
    batch = events(5)
    es.throttle(batch[1].id, times=2)
    assert make_sink(es.url, sleeps).send(batch) == []
    assert set(es.docs()) == {e.id for e in batch}
    sizes = [len(bulk_items(r.body)) for r in es.bulk_requests()]
    assert sizes == [5, 1, 1]
    assert bulk_items(es.bulk_requests()[-1].body)[0]["create"]["_id"] == batch[1].id
    assert len(sleeps) == 2


def test_item_429_that_never_clears_is_retryable(es: FakeElasticsearch) -> None:
    """When an item is still throttled after the retry budget, send raises SinkRetryableError naming the cause."""
    batch = events(3)
    es.throttle(batch[0].id, times=100)
    with pytest.raises(SinkRetryableError, match="es_rejected_execution_exception"):
        make_sink(es.url, retry_max_attempts=3).send(batch)
    assert set(es.docs()) == {batch[1].id, batch[2].id}
    assert es.attempts[batch[0].id] == 3


def test_item_400_goes_to_dead_letter_with_the_reason(es: FakeElasticsearch) -> None:
    """Per-item 400s come back as Rejections of exactly those events, carrying type and reason; no retry."""
    batch = events(6)
    es.reject(batch[1].id)
    es.reject(
        batch[4].id, "mapper_parsing_exception", "failed to parse field [payload] of type [keyword]"
    )
    rejected = make_sink(es.url).send(batch)
    assert [r.event.id for r in rejected] == [batch[1].id, batch[4].id]
    assert "document_parsing_exception" in rejected[0].reason
    assert "failed to parse field [actor_ip] of type [ip]" in rejected[0].reason
    assert (
        "HTTP 400 mapper_parsing_exception: failed to parse field [payload]" in rejected[1].reason
    )
    assert set(es.docs()) == {batch[i].id for i in (0, 2, 3, 5)}
    assert len(es.bulk_requests()) == 1


def test_unreadable_bulk_answer_is_retried(es: FakeElasticsearch, sleeps: Sleeps) -> None:
    """A 200 whose body is not a bulk answer is retried; the items then settle normally."""
    es.script(Reply(200, b'{"took":1,"errors":fal'))
    batch = events(2)
    assert make_sink(es.url, sleeps).send(batch) == []
    assert set(es.docs()) == {e.id for e in batch}
    assert len(es.bulk_requests()) == 2


def test_unencodable_event_is_rejected_and_the_rest_delivered(es: FakeElasticsearch) -> None:
    """An event JSON cannot carry (an integer beyond 64 bits) is dead-lettered; the others still go."""
    good = events(2)
    bad = AuditEvent.from_api({**api_event(50), "extra_number": 2**70})
    rejected = make_sink(es.url).send([good[0], bad, good[1]])
    assert [r.event.id for r in rejected] == [bad.id]
    assert "cannot encode" in rejected[0].reason
    assert set(es.docs()) == {e.id for e in good}


# -- whole-request answers ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429, 502, 408])
def test_whole_request_transient_errors_are_retried(
    es: FakeElasticsearch, sleeps: Sleeps, status: int
) -> None:
    """A whole _bulk refused with 429/5xx/408 is sent again (with backoff) and then delivered."""
    es.fail_requests(status, times=2)
    batch = events(3)
    assert make_sink(es.url, sleeps).send(batch) == []
    assert set(es.docs()) == {e.id for e in batch}
    assert len(es.bulk_requests()) == 3
    assert len(sleeps) == 2


def test_whole_request_429_honours_retry_after(es: FakeElasticsearch, sleeps: Sleeps) -> None:
    """A Retry-After on a whole-request 429 is the least the sink waits."""
    es.fail_requests(429, retry_after="7")
    make_sink(es.url, sleeps).send(events(1))
    assert sleeps and sleeps[0] >= 7


def test_whole_request_errors_exhaust_into_retryable_error(es: FakeElasticsearch) -> None:
    """After retry_max_attempts failed requests, and each half failing its short retries too
    (no event to blame), the sink gives up with SinkRetryableError; nothing is dead-lettered."""
    es.fail_requests(503, times=10)
    with pytest.raises(SinkRetryableError, match="503"):
        make_sink(es.url, retry_max_attempts=3).send(events(2))
    assert len(es.bulk_requests()) == 3 + 2 * 2
    assert es.docs() == {}


def test_non_elasticsearch_400_is_fatal(es: FakeElasticsearch) -> None:
    """A 400 that is not Elasticsearch's error shape (a proxy's page) stops the sink instead of dead-lettering."""
    es.script(Reply(400, b"<html>400 Bad Request</html>"))
    with pytest.raises(SinkFatalError, match="HTTP 400"):
        make_sink(es.url).send(events(4))


def test_request_400_is_split_until_the_bad_event_is_isolated(es: FakeElasticsearch) -> None:
    """A whole-request 400 caused by one event (an _id over 512 bytes) dead-letters that event only."""
    batch = events(5)
    bad = AuditEvent.from_api({**api_event(60), "id": "audit_log-" + "x" * 600})
    rejected = make_sink(es.url).send([*batch[:2], bad, *batch[2:]])
    assert [r.event.id for r in rejected] == [bad.id]
    assert "action_request_validation_exception" in rejected[0].reason
    assert set(es.docs()) == {e.id for e in batch}


def test_a_400_that_is_not_about_any_event_fails_the_sink_not_dead_lettered(
    es: FakeElasticsearch,
) -> None:
    """A 400 every piece gets (not one event's fault) fails the sink after a short search, rejecting nothing."""
    es.script(*[es_error(400, "illegal_argument_exception", "request rejected by policy")] * 200)
    with pytest.raises(SinkRetryableError, match="not about single events"):
        make_sink(es.url).send(events(300))
    assert len(es.bulk_requests()) == in_a_row_limit(300) + 1 < MAX_REFUSALS
    assert es.docs() == {}


def test_413_splits_the_batch(es: FakeElasticsearch) -> None:
    """A 413 (body above http.max_content_length) halves the request until the pieces fit."""
    batch = events(4)
    render = document_renderer("normalized")
    pairs = (batch[:2], batch[2:])
    es.max_content_length = max(
        len(bulk_body([encode_entry(e, render, DEFAULT_INDEX) for e in p])) for p in pairs
    )
    with capture_logs() as logs:
        assert make_sink(es.url).send(batch) == []
    assert set(es.docs()) == {e.id for e in batch}
    assert [len(bulk_items(r.body)) for r in es.bulk_requests()] == [4, 2, 2]
    (summary,) = [log for log in logs if log["event"] == "elasticsearch_batch"]
    assert (summary["requests"], summary["created"]) == (1, 4)


def test_413_for_a_single_document_dead_letters_it(es: FakeElasticsearch) -> None:
    """One document larger than http.max_content_length is dead-lettered, the others delivered."""
    batch = events(3)
    huge = AuditEvent.from_api({**api_event(70), "blob": "y" * 20_000})
    es.max_content_length = 10_000
    rejected = make_sink(es.url).send([batch[0], huge, *batch[1:]])
    assert [r.event.id for r in rejected] == [huge.id]
    assert "413" in rejected[0].reason
    assert set(es.docs()) == {e.id for e in batch}


# -- refusals the operator must fix -------------------------------------------------------------


def test_wrong_api_key_is_fatal_and_never_leaks(
    es: FakeElasticsearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """401: fatal, 'the API key or password is wrong'; the key appears in no error and no log line."""
    wrong = "d3JvbmdpZDp3cm9uZy1zZWNyZXQta2V5LXZhbHVl"
    monkeypatch.setenv("ES_KEY", wrong)
    es.api_key = API_KEY
    with capture_logs() as logs:
        sink = make_sink(es.url, api_key_env="ES_KEY")
        with pytest.raises(SinkFatalError) as caught:
            sink.send(events(2))
    message = str(caught.value)
    assert "HTTP 401" in message and "the API key or password is wrong" in message
    assert "sink 'es'" in message
    for text in (message, repr(logs)):
        assert wrong not in text and API_KEY not in text
    assert es.docs() == {}


def test_wrong_password_is_fatal_and_never_leaks(es: FakeElasticsearch, tmp_path: Path) -> None:
    """Basic auth with a wrong password: fatal 401 message, no password or its base64 anywhere."""
    secret = tmp_path / "password"
    secret.write_text("not-the-password-at-all\n")
    leaked = base64.b64encode(b"shipper:not-the-password-at-all").decode()
    es.basic = ("shipper", PASSWORD)
    with capture_logs() as logs:
        sink = make_sink(es.url, username="shipper", password_file=str(secret))
        with pytest.raises(SinkFatalError, match="password is wrong") as caught:
            sink.send(events(1))
    for text in (str(caught.value), repr(logs)):
        assert "not-the-password-at-all" not in text and leaked not in text


def test_api_key_and_basic_auth_headers(
    es: FakeElasticsearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ApiKey <encoded> (an id:key value is encoded first) and Basic <user:password> are both accepted."""
    key_id, key = "VuaCfGcBCdbkQm-e5aOx", "ui2lp2axTNmsyakw9tvNnw"
    encoded = base64.b64encode(f"{key_id}:{key}".encode()).decode()
    monkeypatch.setenv("ES_KEY", f"{key_id}:{key}")
    monkeypatch.setenv("ES_PASSWORD", PASSWORD)
    es.reset(api_key=encoded, basic=("shipper", PASSWORD))
    assert make_sink(es.url, api_key_env="ES_KEY").send(events(1)) == []
    assert make_sink(es.url, username="shipper", password_env="ES_PASSWORD").send(events(2)) == []
    first, second = es.bulk_requests()
    assert first.headers["authorization"] == f"ApiKey {encoded}"
    assert second.headers["authorization"].startswith("Basic ")
    assert len(es.docs()) == 2


def test_missing_secret_is_fatal_at_open(
    monkeypatch: pytest.MonkeyPatch, es: FakeElasticsearch
) -> None:
    """An unset api_key_env is a config error at open() naming the key and the variable."""
    monkeypatch.delenv("ES_KEY_UNSET", raising=False)
    with pytest.raises(SecretUnavailableError, match="api_key_env: the variable ES_KEY_UNSET"):
        make_sink(es.url, api_key_env="ES_KEY_UNSET")


def test_request_403_names_the_missing_privilege(es: FakeElasticsearch) -> None:
    """A whole-request 403 is fatal and says which privilege on which index is missing."""
    es.write_privilege = False
    with pytest.raises(
        SinkFatalError,
        match=r"HTTP 403.*create_doc \(or write\) privilege on index 'logs-openai.audit-default'",
    ):
        make_sink(es.url).send(events(2))


def test_item_403_is_fatal_not_dead_lettered(es: FakeElasticsearch) -> None:
    """Per-item 403 security_exception (no write on this index) stops the sink rather than dead-lettering all."""
    es.denied_indices.add("audit-locked")
    with pytest.raises(SinkFatalError, match="privilege on index 'audit-locked'"):
        make_sink(es.url, index="audit-locked").send(events(2))


def test_missing_index_without_auto_create_is_fatal(es: FakeElasticsearch) -> None:
    """With auto-create off, index_not_found (404) stops the sink and says to create the index."""
    es.auto_create_index = False
    with pytest.raises(SinkFatalError, match=r"404 index_not_found_exception.*does not exist"):
        make_sink(es.url, index="audit-missing").send(events(1))


def test_request_404_index_not_found_is_fatal(es: FakeElasticsearch) -> None:
    """A whole-request 404 index_not_found_exception (require_alias, proxies) is fatal with the same advice."""
    es.script(
        Reply.json(
            404,
            {
                "error": {"type": "index_not_found_exception", "reason": "no such index"},
                "status": 404,
            },
        ),
        path="/_bulk",
    )
    with pytest.raises(SinkFatalError, match="does not exist and cannot be created"):
        make_sink(es.url).send(events(1))


def test_missing_pipeline_is_fatal(es: FakeElasticsearch) -> None:
    """A pipeline that does not exist fails every item; the sink stops and names the pipeline."""
    with pytest.raises(SinkFatalError, match="ingest pipeline 'nope' does not exist"):
        make_sink(es.url, pipeline="nope").send(events(2))


def test_redirect_is_fatal(es: FakeElasticsearch) -> None:
    """A redirect is never followed with credentials; the sink says to configure the final address."""
    es.script(Reply(301, b"", {"location": "https://elsewhere.example/_bulk"}), path="/_bulk")
    with pytest.raises(SinkFatalError, match="redirects"):
        make_sink(es.url).send(events(1))


# -- encoding, batching, hostile content ---------------------------------------------------------


def test_gzip_bodies_are_accepted(es: FakeElasticsearch) -> None:
    """compression=gzip sends Content-Encoding: gzip with a gzip body that Elasticsearch decodes."""
    batch = events(4)
    make_sink(es.url, compression="gzip").send(batch)
    (request,) = es.bulk_requests()
    assert request.headers["content-encoding"] == "gzip"
    assert gzip.decompress(request.raw_body) == request.body
    assert es.docs() == {e.id: expected_doc(e) for e in batch}


def test_batches_are_split_by_count(es: FakeElasticsearch) -> None:
    """batch_max_events bounds the documents per _bulk request."""
    batch = events(10)
    make_sink(es.url, batch_max_events=3).send(batch)
    assert [len(bulk_items(r.body)) for r in es.bulk_requests()] == [3, 3, 3, 1]
    assert es.created == [e.id for e in batch]


def test_batches_are_split_by_bytes(es: FakeElasticsearch) -> None:
    """batch_max_bytes bounds the uncompressed body of every _bulk request."""
    batch = events(12)
    make_sink(es.url, batch_max_bytes=2048).send(batch)
    requests = es.bulk_requests()
    assert len(requests) > 2
    assert all(len(r.body) <= 2048 for r in requests)
    assert es.created == [e.id for e in batch]


HOSTILE_EXTRA = [
    *HOSTILE,
    'x"}}\n{"create":{"_index":"forged","_id":"forged"}}\n{"forged":true',
    "tab\there, vertical\x0btab, formfeed\x0c, escape\x1b[31m, del\x7f",
    "line\u2028separator\u2029paragraph\u0085next",
    "surrogate pair \U0001f984 \U0001d518 and BOM \ufeff",
    "z" * 100_000,
]


def test_hostile_content_gives_exactly_one_identical_document_per_event(
    es: FakeElasticsearch,
) -> None:
    """Newlines, NUL, quotes, brackets, pipes, equals, huge and non-BMP strings: one document per event, same content."""
    batch = [
        AuditEvent.from_api({**api_event(300 + i, text=text), "note": {text: text}})
        for i, text in enumerate(HOSTILE_EXTRA)
    ]
    assert make_sink(es.url).send(batch) == []
    assert sorted(es.created) == sorted(e.id for e in batch)
    assert es.docs() == {e.id: expected_doc(e) for e in batch}
    assert "forged" not in es.documents
    body = b"".join(r.body for r in es.bulk_requests())
    assert body.count(b"\n") == 2 * len(batch)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    ids=st.lists(st.text(min_size=1), min_size=1, max_size=4, unique=True),
    extra=st.dictionaries(st.text(), json_value, max_size=4),
)
def test_no_event_content_survives_as_a_newline_in_the_body(
    ids: list[str], extra: dict[str, Any]
) -> None:
    """For any ids and JSON content, the body is exactly 2 lines per event: the action, then the document."""
    render = document_renderer("raw")
    batch = [
        AuditEvent.from_api({**extra, "id": event_id, "type": "x.y", "effective_at": 1})
        for event_id in ids
    ]
    lines = bulk_body([encode_entry(e, render, DEFAULT_INDEX) for e in batch]).split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2 * len(batch) + 1
    for number, event in enumerate(batch):
        assert orjson.loads(lines[2 * number]) == {
            "create": {"_index": DEFAULT_INDEX, "_id": event.id}
        }
        expected = (
            event.raw
            if "@timestamp" in event.raw
            else {"@timestamp": "1970-01-01T00:00:01Z", **event.raw}
        )
        assert orjson.loads(lines[2 * number + 1]) == expected


# -- probe -------------------------------------------------------------------------------------


def test_probe_reports_elasticsearch_version_and_write_privilege(es: FakeElasticsearch) -> None:
    """probe() names the product, version and cluster, and confirms create_doc on the index."""
    verdict = make_sink(es.url).probe()
    assert (
        verdict
        == "Elasticsearch 8.14.0, cluster 'fake-cluster'; may write to 'logs-openai.audit-default'"
    )


def test_probe_reports_opensearch(es: FakeElasticsearch) -> None:
    """An OpenSearch answer (version.distribution) is named as such; no Elasticsearch-only call is made."""
    es.reset(distribution="opensearch", version="2.11.0")
    assert make_sink(es.url).probe() == "OpenSearch 2.11.0, cluster 'fake-cluster'"
    assert [r.path for r in es.receiver.requests] == ["/"]


def test_probe_401_is_fatal_and_clear(
    es: FakeElasticsearch, monkeypatch: pytest.MonkeyPatch
) -> None:
    """probe() with a wrong key raises SinkFatalError saying the key or password is wrong."""
    monkeypatch.setenv("ES_KEY", "bm9wZTpub3BlLW5vcGUtbm9wZQ==")
    es.api_key = API_KEY
    with pytest.raises(SinkFatalError, match=r"HTTP 401.*the API key or password is wrong"):
        make_sink(es.url, api_key_env="ES_KEY").probe()


def test_probe_403_on_cluster_info_still_checks_write_privilege(es: FakeElasticsearch) -> None:
    """A least-privilege key cannot read GET / (403): probe says the credentials work and checks the index."""
    es.monitor_privilege = False
    verdict = make_sink(es.url).probe()
    assert verdict.startswith("credentials valid")
    assert verdict.endswith("may write to 'logs-openai.audit-default'")


def test_probe_without_write_privilege_is_fatal(es: FakeElasticsearch) -> None:
    """probe() fails when _has_privileges says the credentials cannot create documents in the index."""
    es.write_privilege = False
    with pytest.raises(SinkFatalError, match="create_doc"):
        make_sink(es.url).probe()


def test_probe_refuses_elasticsearch_6(es: FakeElasticsearch) -> None:
    """Elasticsearch before 7 (mapping types) is refused by probe() with the version it found."""
    es.version = "6.8.23"
    with pytest.raises(SinkFatalError, match=r"6\.8\.23 is too old"):
        make_sink(es.url).probe()


def test_probe_of_an_unavailable_cluster_is_retryable(es: FakeElasticsearch) -> None:
    """A 503 from GET / is reported as a retryable error, not as a configuration problem."""
    es.script(Reply(503, b"{}"), path="/")
    with pytest.raises(SinkRetryableError, match="not available"):
        make_sink(es.url).probe()


# -- receiver restarts and lifecycle ------------------------------------------------------------


def test_receiver_restart_keeps_data_and_the_sink_reconnects(es: FakeElasticsearch) -> None:
    """After a restart on the same port the same sink instance delivers again; earlier documents remain."""
    first, second = events(3), events(3, start=10)
    sink = make_sink(es.url)
    sink.send(first)
    es.restart()
    assert sink.send(second) == []
    assert set(es.docs()) == {e.id for e in first + second}


def test_receiver_down_is_retryable_then_recovers(es: FakeElasticsearch) -> None:
    """Connection refused exhausts into SinkRetryableError; once it is back, the same batch is delivered."""
    batch = events(2)
    sink = make_sink(es.url, retry_max_attempts=2)
    with es.down(), pytest.raises(SinkRetryableError, match="ConnectError"):
        sink.send(batch)
    assert sink.send(batch) == []
    assert set(es.docs()) == {e.id for e in batch}


def test_plugin_creates_a_sink_and_close_is_idempotent(es: FakeElasticsearch) -> None:
    """The entry-point object builds a Sink from validated settings; flush and close are safe to repeat."""
    settings = ElasticsearchSettings(
        type="elasticsearch", name="es", url=es.url, format="normalized"
    )
    sink = plugin.create(settings, SinkContext(state_dir=Path("/nonexistent")))
    assert isinstance(sink, Sink)
    sink.close()
    sink.open()
    sink.flush()
    sink.close()
    sink.close()


# -- settings ----------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    """Defaults: ECS documents into the logs-openai.audit-default data stream, 1000 events / 5 MB per request."""
    s = ElasticsearchSettings(type="elasticsearch", name="es", url="https://es.example.com:9200")
    assert (s.format, s.index, s.batch_max_events, s.batch_max_bytes) == (
        "ecs",
        DEFAULT_INDEX,
        1000,
        5_000_000,
    )


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"unknown_key": 1}, "extra"),
        ({"format": "cef"}, "format must be one of"),
        ({"index": "Logs/Audit"}, "index"),
        ({"index": "_hidden"}, "index"),
        ({"api_key_env": "K", "username": "u", "password_env": "P"}, "not both"),
        ({"username": "u"}, "username needs"),
        ({"password_env": "P"}, "need username"),
        ({"batch_max_bytes": 500_000_000}, "batch_max_bytes"),
        ({"url": "http://es.example.com:9200"}, "plain http"),
    ],
)
def test_settings_reject_bad_values(extra: dict[str, Any], problem: str) -> None:
    """Unknown keys, unavailable formats, unsafe index names, half-configured auth and plain http are refused."""
    values = {"type": "elasticsearch", "name": "es", "url": "https://es.example.com:9200", **extra}
    with pytest.raises(ValidationError, match=problem):
        ElasticsearchSettings.model_validate(values)
