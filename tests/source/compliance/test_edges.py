"""The compliance source's less travelled paths: unusable listings, transport failures, bodies
served by the API itself, files ending inside a record, overflowing windows, and windows
outside the cycle's listing."""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from shipper.config.settings import AuditLogSettings, ComplianceSourceSettings
from shipper.emulator.compliance import ComplianceEmulator
from shipper.errors import RetryableResponseError, SourceRefusedError, SourceUnavailableError
from shipper.pipeline.windows import WindowOverflowError
from shipper.source.chatgpt_compliance.listing import error_message, parse_listing
from shipper.source.chatgpt_compliance.source import ComplianceSource, compliance_client
from shipper.source.quarantine import Quarantine, read_entries
from shipper.testing.receivers.base import Recorded
from tests.source.compliance.conftest import (
    KEY,
    SINCE,
    WORKSPACE,
    HandmadeFiles,
    Sleeps,
    handmade_source,
    make_source,
)

Serve = Callable[..., tuple[HandmadeFiles, str]]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<html>502</html>", "not JSON"),
        (b'{"has_more":false}', "no data array"),
        (b'{"data":[]}', "no has_more"),
        (b'{"data":[1],"has_more":false}', "data\\[0\\] is not an object"),
        (b'{"data":[{"end_time":"2026-07-20T00:00:00Z"}],"has_more":false}', "no usable id"),
        (b'{"data":[{"id":"x","end_time":"yesterday"}],"has_more":false}', "not an RFC 3339"),
        (b'{"data":[],"has_more":false,"last_end_time":"soon"}', "last_end_time"),
    ],
)
def test_an_unusable_listing_body_is_a_retryable_failure_saying_why(
    body: bytes, reason: str
) -> None:
    """A body that is not a listing is never read as an empty page."""
    with pytest.raises(RetryableResponseError, match=reason):
        parse_listing(body, "AUTH_LOG")


def test_the_apis_words_are_taken_from_any_error_body() -> None:
    """An error object's message, an error string, or the start of a body that is not JSON."""
    assert error_message(b'{"error":{"message":"no"}}') == "no"
    assert error_message(b'{"error":"unauthorized"}') == "unauthorized"
    assert error_message(b"<h1>Bad gateway</h1>") == "<h1>Bad gateway</h1>"
    assert error_message(b"") is None
    assert error_message(b"[1]") is None


def test_a_closed_port_is_unavailable_after_the_retries() -> None:
    """Connection refused on every attempt ends as SourceUnavailableError, not a raw error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = ComplianceSourceSettings(
        base_url=f"http://127.0.0.1:{port}/v1/compliance",
        scope=f"workspaces/{WORKSPACE}",
        event_types=["AUTH_LOG"],
        retry_max_attempts=2,
    )
    sleeps = Sleeps()
    source = ComplianceSource(settings, SecretStr(KEY), sleep=sleeps)
    with pytest.raises(SourceUnavailableError, match="kept failing"):
        source.final_until(SINCE)
    assert source.retries == 1 and len(sleeps) == 1


def test_a_body_served_by_the_api_itself_is_read(handmade: Serve) -> None:
    """A download answered 200 instead of 307 is read from that answer."""
    api, base = handmade([b'{"event_id":"a"}\n{"event_id":"b"}\n'])
    api.download_status = 200
    source = handmade_source(base)
    until = source.final_until(SINCE)
    assert set(source.fetch_pass(SINCE, until, "AUTH_LOG")) == {"a", "b"}


def test_a_log_file_the_api_no_longer_knows_is_a_refusal(handmade: Serve) -> None:
    """A 404 on the download is not retried: it names the status and the API's words."""
    api, base = handmade([b'{"event_id":"a"}\n'])
    api.download_status = 404
    source = handmade_source(base)
    until = source.final_until(SINCE)
    with pytest.raises(SourceRefusedError, match="HTTP 404"):
        source.fetch_pass(SINCE, until, "AUTH_LOG")


def test_a_file_ending_inside_a_record_quarantines_that_tail(
    handmade: Serve, tmp_path: Path
) -> None:
    """A file verified whole whose last value is unfinished: the tail is a defect, kept; the
    records before it are delivered."""
    _, base = handmade([b'{"event_id":"a"}\n{"event_id":"b", "x": [1,'])
    source = handmade_source(base, tmp_path)
    until = source.final_until(SINCE)
    assert set(source.fetch_pass(SINCE, until, "AUTH_LOG")) == {"a"}
    (entry,) = read_entries(tmp_path / "quarantine.jsonl")
    assert entry.raw == b'{"event_id":"b", "x": [1,'


def test_without_a_quarantine_unreadable_records_are_logged(handmade: Serve) -> None:
    """No quarantine configured: the defects are reported loudly, the rest delivered."""
    _, base = handmade([b'{"event_id":"a"}\n{oops}\n'])
    source = handmade_source(base)
    until = source.final_until(SINCE)
    with capture_logs() as logs:
        assert set(source.fetch_pass(SINCE, until, "AUTH_LOG")) == {"a"}
    assert [e for e in logs if e["event"] == "records_unreadable"]


def test_a_quarantine_that_cannot_be_written_holds_the_window_back(
    handmade: Serve, tmp_path: Path
) -> None:
    """Records that cannot be kept durably fail the window rather than pass it unkept."""
    _, base = handmade([b'{"event_id":"a"}\n{oops}\n'])
    source = handmade_source(base)
    (tmp_path / "q").mkdir()
    source.quarantine = Quarantine(tmp_path / "q", "q")  # a directory: not appendable
    until = source.final_until(SINCE)
    with pytest.raises(SourceUnavailableError, match="cannot keep 1 unreadable records"):
        source.fetch_pass(SINCE, until, "AUTH_LOG")


def test_a_window_over_its_limit_overflows_and_tells_the_other_passes(
    emulator: ComplianceEmulator,
) -> None:
    """Past `limit` records the pass raises WindowOverflowError and sets `abandon`; a pass
    started with `abandon` set gives up before its first download."""
    emulator.add_files("AUTH_LOG", count=4, records_per_file=5)
    source = make_source(emulator)
    until = source.final_until(SINCE)
    abandon = threading.Event()
    with pytest.raises(WindowOverflowError):
        source.fetch_pass(SINCE, until, "AUTH_LOG", limit=7, abandon=abandon)
    assert abandon.is_set()
    downloads = emulator.stats.download_requests
    with pytest.raises(WindowOverflowError):
        source.fetch_pass(SINCE, until, "AUTH_LOG", abandon=abandon)
    assert emulator.stats.download_requests == downloads


def test_a_window_outside_the_cycles_listing_is_listed_on_its_own(
    emulator: ComplianceEmulator,
) -> None:
    """fetch_window with no listing kept lists that window itself; records come sorted."""
    emulator.add_files("AUTH_LOG", count=6, records_per_file=2, spacing=600)
    source = make_source(emulator)
    events = source.fetch_window(SINCE, SINCE + 1801)
    assert [e.effective_at for e in events] == sorted(e.effective_at for e in events)
    assert len(events) == 6 and emulator.stats.list_requests == 1


def test_the_factory_reads_the_key_and_refuses_other_settings(
    monkeypatch: pytest.MonkeyPatch, emulator: ComplianceEmulator
) -> None:
    """compliance_client reads the configured key; other settings, or several types, are a bug."""
    monkeypatch.setenv("OPENAI_COMPLIANCE_KEY", KEY)
    settings = ComplianceSourceSettings(
        base_url=emulator.base_url, scope=f"workspaces/{emulator.workspace_id}"
    )
    with pytest.raises(ValueError, match="one event type"):
        compliance_client(settings)
    client = compliance_client(settings.per_event_type()[0])
    try:
        assert client.final_until(SINCE) == SINCE
    finally:
        client.close()
    with pytest.raises(TypeError):
        compliance_client(AuditLogSettings())


def test_a_checksum_is_compared_case_insensitively(handmade: Serve) -> None:
    """The hand-made listing sends upper-case hex digests: the files still verify."""
    body = b'{"event_id":"a"}\n'
    api, base = handmade([body])
    assert hashlib.sha256(body).hexdigest().upper() in str(api(_listing_request()).body)
    source = handmade_source(base)
    until = source.final_until(SINCE)
    assert set(source.fetch_pass(SINCE, until, "AUTH_LOG")) == {"a"}
    assert source.retries == 0


def _listing_request() -> Recorded:
    path = f"/v1/compliance/workspaces/{WORKSPACE}/logs"
    return Recorded("GET", path, {}, {}, b"", b"")


def test_a_window_overflows_inside_a_file_and_its_second_streams_from_the_spool(
    emulator: ComplianceEmulator,
) -> None:
    """A window past `limit` overflows where it is, inside a file too, with every record seen
    at the file's second (so the cycle cuts down to it); that second then streams in batches
    from the file kept on download, not from the API; a window full before a file overflows
    without downloading it."""
    big, small = emulator.add_files("AUTH_LOG", count=2, records_per_file=30)
    second = big.end_micros // 1_000_000
    source = make_source(emulator)
    until = source.final_until(SINCE)
    with pytest.raises(WindowOverflowError) as inside:
        source.fetch_pass(SINCE, until, "AUTH_LOG", limit=10)
    assert (inside.value.seen, inside.value.spread, inside.value.earliest) == (11, 0, second)
    downloads = emulator.stats.download_requests
    batches = list(source.stream_pass(second, second + 1, "AUTH_LOG", batch=8))
    assert emulator.stats.download_requests == downloads  # from the spool
    assert [len(b) for b in batches] == [8, 8, 8, 6]
    assert [dict(b.parts) for b in batches] == [{}, {}, {}, {big.id: second}]
    assert len({i for b in batches for i in b}) == 30
    with pytest.raises(WindowOverflowError) as before:
        source.fetch_pass(SINCE, until, "AUTH_LOG", limit=30)
    assert before.value.seen == 30  # full after the first file: the second is not downloaded
    assert emulator.stats.download_requests == downloads
    assert small.id != big.id
