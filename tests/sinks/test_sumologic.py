"""The Sumo Logic sink against a fake HTTP Logs source on a real loopback port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from shipper.config.settings import parse_config, sink_plugins
from shipper.errors import ConfigError, SinkFatalError, SinkRetryableError
from shipper.secrets import SecretUnavailableError
from shipper.testing.contract.events import events, hostile_events
from shipper.testing.receivers.base import Reply
from shipper.testing.receivers.sumologic import FakeSumo
from sinks.sumologic.sink import SumoLogicSettings, SumoLogicSink


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sumo() -> Iterator[FakeSumo]:
    fake = FakeSumo()
    with fake.receiver:
        yield fake


def url_file(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "sumo-url"
    path.write_text(url + "\n")
    return path


def make(
    url: str, tmp_path: Path, sleeps: Sleeps | None = None, *, opened: bool = True, **kw: Any
) -> SumoLogicSink:
    values: dict[str, Any] = {
        "type": "sumologic",
        "name": "sumo",
        "url_file": str(url_file(tmp_path, url)),
        "retry_max_attempts": 4,
    }
    sink = SumoLogicSink(
        SumoLogicSettings.model_validate({**values, **kw}), sleep=sleeps or Sleeps()
    )
    if opened:
        sink.open()
    return sink


# -- shape ----------------------------------------------------------------------------------


def test_events_go_as_one_gzip_line_each_with_the_source_metadata(
    sumo: FakeSumo, tmp_path: Path
) -> None:
    """One gzip POST; each event one line (its JSON); X-Sumo-Category/-Name/-Host/-Fields set."""
    batch = events(4)
    sink = make(
        sumo.url,
        tmp_path,
        source_category="security/openai",
        source_name="audit",
        source_host="shipper-1",
        fields={"org": "acme", "env": "prod"},
    )
    assert sink.send(batch) == []
    (request,) = sumo.receiver.requests
    assert request.headers["content-encoding"] == "gzip"
    assert request.body.count(b"\n") == len(batch) - 1
    assert [json.loads(m.text) for m in sumo.messages] == [e.raw for e in batch]
    meta = sumo.messages[0]
    assert (meta.category, meta.name, meta.host) == ("security/openai", "audit", "shipper-1")
    assert meta.fields == {"org": "acme", "env": "prod"}


def test_hostile_content_stays_one_message_per_event(sumo: FakeSumo, tmp_path: Path) -> None:
    """Newlines, CR, NUL and non-BMP text inside events never split a message (JSON escapes them)."""
    batch = hostile_events()
    assert make(sumo.url, tmp_path).send(batch) == []
    assert sumo.ids() == [e.id for e in batch]
    assert len(sumo.messages) == len(batch)


# -- documented limits ------------------------------------------------------------------------


def test_no_request_is_over_1_mb_uncompressed(sumo: FakeSumo, tmp_path: Path) -> None:
    """~3 MB of events go in requests of at most 1,000,000 bytes after gunzip (Sumo's
    recommended maximum): the fake lists any bigger one in `oversized`."""
    batch = events(60, text="w" * 12_000)  # ~50 kB per line
    assert make(sumo.url, tmp_path).send(batch) == []
    assert sumo.oversized == []
    assert len(sumo.request_sizes) >= 3 and max(sumo.request_sizes) <= 1_000_000
    assert sumo.ids() == [e.id for e in batch]


def test_requests_over_1_mb_are_a_config_error() -> None:
    """batch_max_bytes above 1 MB is refused, naming the key."""
    assert "batch_max_bytes" in _config_error({"batch_max_bytes": 2_000_000})


def test_a_message_over_64_kb_is_dead_lettered_not_sliced(sumo: FakeSumo, tmp_path: Path) -> None:
    """An event whose line is over 65,536 bytes comes back refused with the reason (Sumo would
    slice it into several messages); its neighbours are delivered whole."""
    batch = [*events(1), *events(1, start=1, text="v" * 20_000), *events(1, start=2)]
    rejected = make(sumo.url, tmp_path).send(batch)
    assert [r.event.id for r in rejected] == [batch[1].id]
    assert "64 KB" in rejected[0].reason
    assert sumo.sliced == []
    assert sumo.ids() == [batch[0].id, batch[2].id]


# -- answers -------------------------------------------------------------------------------


def test_a_429_drops_the_data_and_the_request_is_sent_again(sumo: FakeSumo, tmp_path: Path) -> None:
    """Two 429s (data dropped by Sumo) with Retry-After: 5: the same lines are re-sent, waiting
    at least 5 s each time, and arrive exactly once."""
    sumo.throttle(2, retry_after=5)
    sleeps = Sleeps()
    batch = events(5)
    assert make(sumo.url, tmp_path, sleeps).send(batch) == []
    assert sumo.ids() == [e.id for e in batch]
    assert len(sleeps.calls) == 2 and min(sleeps.calls) >= 5


def test_a_408_is_resent_and_may_duplicate_never_lose(sumo: FakeSumo, tmp_path: Path) -> None:
    """408 after Sumo ingested part of the request: re-sent; every event arrives, some twice."""
    sumo.time_out(1)
    batch = events(6)
    assert make(sumo.url, tmp_path).send(batch) == []
    ids = sumo.ids()
    assert set(ids) == {e.id for e in batch}
    assert ids[:3] == [e.id for e in batch[:3]] and len(ids) == 9


@pytest.mark.parametrize("status", [503, 504])
def test_server_errors_are_retried(sumo: FakeSumo, tmp_path: Path, status: int) -> None:
    """503 and 504 are sent again until Sumo answers 200."""
    sumo.fail(2, status)
    batch = events(3)
    assert make(sumo.url, tmp_path).send(batch) == []
    assert sumo.ids() == [e.id for e in batch]


def test_a_wrong_url_token_stops_the_sink_without_showing_the_url(
    sumo: FakeSumo, tmp_path: Path
) -> None:
    """401 (another collector code) is fatal, says to put the current URL in url_env/url_file,
    and the URL appears nowhere in the error or the logs."""
    wrong = sumo.receiver.url + "/receiver/v1/http/WRONGcode0123456789abcdef"
    with capture_logs() as logs, pytest.raises(SinkFatalError) as caught:
        make(wrong, tmp_path).send(events(1))
    assert "url_env/url_file" in str(caught.value)
    assert "WRONGcode" not in str(caught.value) and "WRONGcode" not in repr(logs)


def test_a_400_is_isolated_and_dead_lettered_with_the_reason(
    sumo: FakeSumo, tmp_path: Path
) -> None:
    """A 400 to a batch, then 200s: halving finds the request that keeps failing; only an event
    refused alone while its siblings pass is dead-lettered."""
    sumo.receiver.script(Reply(400, b"bad"), Reply(200), Reply(400, b"bad"))
    batch = events(2)
    rejected = make(sumo.url, tmp_path).send(batch)
    assert [r.event.id for r in rejected] == [batch[1].id]
    assert "HTTP 400" in rejected[0].reason


def test_the_url_never_appears_in_errors_logs_or_dead_letters(
    sumo: FakeSumo, tmp_path: Path
) -> None:
    """Sumo echoing the URL in error bodies: no reason, log line or raised error holds it."""
    echo = Reply(400, f"bad request to {sumo.url}".encode())
    sumo.receiver.script(echo, Reply(200), echo)
    with capture_logs() as logs:
        rejected = make(sumo.url, tmp_path).send(events(2))
        sumo.receiver.script(*[Reply(503, f"down: {sumo.url}".encode())] * 10)
        with pytest.raises(SinkRetryableError) as caught:
            make(sumo.url, tmp_path, retry_max_attempts=2).send(events(1))
    assert rejected and all(sumo.code not in r.reason for r in rejected)
    assert sumo.code not in str(caught.value)
    assert sumo.code not in repr(logs)


def test_an_exhausted_ingest_budget_is_undetectable(sumo: FakeSumo, tmp_path: Path) -> None:
    """With the ingest budget exhausted Sumo answers 200 and drops the data: the sink reports
    delivery, as any client must (documented, not fixable here)."""
    sumo.budget_exhausted = True
    assert make(sumo.url, tmp_path).send(events(3)) == []
    assert sumo.messages == [] and sumo.dropped == 3


# -- the URL as a secret and check -------------------------------------------------------------


def test_a_value_that_is_not_a_source_url_is_a_config_error_without_the_value(
    tmp_path: Path,
) -> None:
    """A URL without /receiver/v1/http/ is refused at open, naming url_file, never echoing it."""
    sink = make("https://example.com/secret-path-0123456789", tmp_path, opened=False)
    with pytest.raises(SecretUnavailableError) as caught:
        sink.open()
    assert "url_file" in str(caught.value) and '"sumo"' in str(caught.value)
    assert "secret-path" not in str(caught.value)


def test_plain_http_to_a_remote_host_is_refused_without_the_url(tmp_path: Path) -> None:
    """The shared rule (https unless loopback) applies to the URL read; the error masks it."""
    url = "http://collectors.example.com/receiver/v1/http/ABCsecret0123456789"
    with pytest.raises(SecretUnavailableError) as caught:
        make(url, tmp_path, opened=False).open()
    assert "plain http" in str(caught.value) and "ABCsecret" not in str(caught.value)


def test_check_reaches_the_collector_and_says_what_it_cannot_check(
    sumo: FakeSumo, tmp_path: Path
) -> None:
    """probe() sends a HEAD only (nothing ingested) and says the token and budget are unknowable."""
    verdict = make(sumo.url, tmp_path).probe()
    assert "reachable" in verdict and "cannot be checked" in verdict and "budget" in verdict
    assert [r.method for r in sumo.receiver.requests] == ["HEAD"]
    assert sumo.messages == [] and sumo.code not in verdict


def test_check_of_a_collector_that_is_down_is_retryable(tmp_path: Path) -> None:
    """Nothing listening: probe() raises SinkRetryableError."""
    sink = make("http://127.0.0.1:9/receiver/v1/http/code0123456789", tmp_path, opened=False)
    with pytest.raises(SinkRetryableError):
        sink.probe()
    sink.close()


# -- configuration ---------------------------------------------------------------------------


def _config_error(keys: dict[str, Any]) -> str:
    raw = {"type": "sumologic", "name": "sumo", "url_env": "SUMO_URL", **keys}
    with pytest.raises(ConfigError) as caught:
        parse_config({"source": {}, "sinks": [raw]}, "x.toml", sink_plugins())
    return str(caught.value)


@pytest.mark.parametrize(
    ("keys", "name"),
    [
        ({"fields": {"bad name": "x"}}, "fields"),
        ({"fields": {"env": "a,b"}}, "fields"),
        ({"source_category": "line\nbreak"}, "source_category"),
        ({"format": "cef"}, "format"),
        ({"compression": "zstd"}, "compression"),
    ],
)
def test_bad_config_names_the_table_and_key(keys: dict[str, Any], name: str) -> None:
    """Each wrong key is a ConfigError naming the sink and that key."""
    message = _config_error(keys)
    assert f"sinks[0].{name}" in message


def test_a_url_written_inline_is_refused() -> None:
    """url = "https://..." is not accepted: the URL must come from url_env or url_file."""
    message = _config_error({"url_env": None, "url": "https://x/receiver/v1/http/abc"})
    assert "url" in message
