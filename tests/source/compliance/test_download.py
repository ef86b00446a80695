"""The compliance source's downloads against the emulator (and a hand-made API where the emulator
cannot misbehave enough): the 307 to storage, expiry, checksums, truncation, record streams,
errors and their messages, memory, and secrets kept out of logs and quarantine."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from shipper.emulator.compliance import ComplianceEmulator, ComplianceFault
from shipper.errors import RetryableResponseError, SourceRefusedError, SourceUnavailableError
from shipper.model.event import ComplianceRecord
from shipper.source.audit_log.parse import Defect
from shipper.source.chatgpt_compliance.download import (
    Storage,
    UnsafeRedirectError,
    check_redirect,
    verify,
)
from shipper.source.chatgpt_compliance.listing import LogFile, parse_time
from shipper.source.chatgpt_compliance.records import JsonValues, read_record
from shipper.source.quarantine import Quarantine, read_entries
from shipper.testing.receivers.base import Receiver, Recorded, Reply
from tests.source.compliance.conftest import (
    KEY,
    NO_GRANT,
    SINCE,
    START,
    HandmadeFiles,
    Sleeps,
    handmade_source,
    make_source,
    read_all,
)


def ids(emu: ComplianceEmulator, event_type: str = "AUTH_LOG") -> set[str]:
    return {r["event_id"] for r in emu.records(event_type)}


# the redirect


def test_the_redirect_is_followed_to_storage_without_the_authorization_header(
    emulator: ComplianceEmulator,
) -> None:
    """Storage refuses a request carrying Authorization; every file still arrives, first try."""
    assert emulator.storage_rejects_authorization
    emulator.add_files("AUTH_LOG", count=3)
    source = make_source(emulator)
    assert set(read_all(source)) == ids(emulator)
    stats = emulator.stats
    assert stats.storage_requests == 3 and stats.files_served == 3
    assert source.retries == 0


def test_a_redirect_to_plain_http_on_another_host_is_refused() -> None:
    """Only https is followed; http only to loopback (the emulator); the refusal names no query."""
    assert check_redirect("https://blob.example.net/f.jsonl?sig=s3cr3t").startswith("https://")
    assert check_redirect("http://127.0.0.1:9/f.jsonl?sig=x").startswith("http://127.0.0.1")
    for bad in ("http://blob.example.net/f.jsonl?sig=s3cr3t", "ftp://x/y", "", None):
        with pytest.raises(UnsafeRedirectError) as caught:
            check_redirect(bad)
        assert "s3cr3t" not in str(caught.value)


def test_a_redirect_to_plain_http_off_loopback_fails_the_download_unfetched(
    handmade: Callable[..., tuple[HandmadeFiles, str]],
) -> None:
    """The API's 307 to http://<remote host> is refused (not retried), and nothing is fetched."""
    api, base = handmade([b'{"event_id":"a"}\n'], lambda fid: f"http://blob.example.net/{fid}")
    source = handmade_source(base)
    with pytest.raises(SourceRefusedError, match="only https is followed") as caught:
        read_all(source)
    assert "s3cr3t" not in str(caught.value)
    assert not [r for r in api.requests if r.path.startswith("/blob/")]


# expiry, checksums, truncation


def test_an_expired_signed_url_is_replaced_by_a_fresh_one(emulator: ComplianceEmulator) -> None:
    """Storage's 403 for an expired signature makes the source ask /logs/{id} again."""
    emulator.add_files("AUTH_LOG")
    emulator.inject(ComplianceFault("expired_url", where="download"))
    source = make_source(emulator)
    assert set(read_all(source)) == ids(emulator)
    assert emulator.stats.download_requests == 2 and source.retries == 1


def test_a_checksum_mismatch_is_retried(emulator: ComplianceEmulator) -> None:
    """One corrupt body (same length, other SHA-256) is downloaded again and then delivered."""
    emulator.add_files("AUTH_LOG", count=2)
    emulator.inject(ComplianceFault("checksum", where="storage"))
    source = make_source(emulator)
    assert set(read_all(source)) == ids(emulator)
    assert source.retries == 1


def test_a_file_that_never_matches_its_checksum_fails_the_window(
    emulator: ComplianceEmulator,
) -> None:
    """Every body corrupt: after the retries the window fails; no record of it is delivered."""
    emulator.add_files("AUTH_LOG")
    emulator.inject(ComplianceFault("checksum", where="storage", probability=1.0))
    source = make_source(emulator, retry_max_attempts=3)
    until = source.final_until(SINCE)
    with pytest.raises(SourceUnavailableError, match="SHA-256"):
        source.fetch_pass(SINCE, until, "AUTH_LOG")
    assert emulator.stats.storage_requests == 3


def test_a_truncated_body_is_retried_not_quarantined(
    emulator: ComplianceEmulator, tmp_path: Path
) -> None:
    """A body cut in half is read again whole; nothing reaches the quarantine."""
    emulator.add_files("AUTH_LOG", count=2, records_per_file=20)
    emulator.inject(ComplianceFault("truncated", where="storage"))
    source = make_source(emulator)
    source.quarantine = Quarantine(tmp_path / "q.jsonl", "q")
    assert set(read_all(source)) == ids(emulator)
    assert source.retries == 1
    assert not (tmp_path / "q.jsonl").exists()


def test_a_short_body_is_caught_by_the_listed_size() -> None:
    """The stream's size is checked against file_size even when the checksum is not given."""
    log_file = LogFile("eclf_a", "AUTH_LOG", 0, size=100)
    with pytest.raises(RetryableResponseError, match="50 bytes read"):
        verify(log_file, 50, hashlib.sha256(b"").hexdigest(), "https://blob/a")


# record streams


def test_concatenated_records_and_blank_lines_in_a_file_are_read(
    emulator: ComplianceEmulator,
) -> None:
    """Objects glued without newlines read as separate records, each exactly its bytes."""
    emulator.concatenated = True
    files = emulator.add_files("AUTH_LOG", count=2, records_per_file=6)
    found = read_all(make_source(emulator))
    assert set(found) == ids(emulator)
    expected = {r["event_id"]: orjson.dumps(r) for f in files for r in emulator.file_records(f)}
    assert {i: e.json for i, e in found.items()} == expected


def test_a_malformed_record_is_quarantined_and_the_rest_of_the_file_delivered(
    handmade: Callable[..., tuple[HandmadeFiles, str]], tmp_path: Path
) -> None:
    """Not JSON, not an object: kept in the quarantine with the file id; the others delivered;
    a record without event_id is delivered under a digest of its bytes."""
    body = (
        b'{"event_id":"a","type":"AUTH_LOG"}\n'
        b"{not json at all}\n"
        b'[1,2]{"event_id":"b","type":"AUTH_LOG"}\n\n'
        b'{"type":"AUTH_LOG","no":"id"}\n'
    )
    _, base = handmade([body])
    source = handmade_source(base, tmp_path)
    found = read_all(source)
    no_id = "sha256:" + hashlib.sha256(b'{"type":"AUTH_LOG","no":"id"}').hexdigest()
    assert set(found) == {"a", "b", no_id}
    kept = read_entries(tmp_path / "quarantine.jsonl")
    assert sorted(e.raw for e in kept) == [b"[1,2]", b"{not json at all}"]
    assert {e.doc["part"] for e in kept} == {f"eclf_{0:032x}"}


def test_records_repeated_across_files_collapse_to_one(emulator: ComplianceEmulator) -> None:
    """COSTS repeats event_ids in later files: a pass returns each id once."""
    emulator.add_files("COSTS", count=20, records_per_file=5, duplicate_ratio=0.3)
    records = emulator.records("COSTS")
    distinct = {r["event_id"] for r in records}
    assert len(distinct) < len(records)  # the feed does repeat
    assert set(read_all(make_source(emulator, "COSTS"))) == distinct


def test_the_decoder_holds_one_record_and_a_chunk_at_most(emulator: ComplianceEmulator) -> None:
    """A 12 MB file streamed from storage: the cutter never holds more than the largest record
    plus one received chunk, whatever the file's size."""
    (log_file,) = emulator.add_files("AUTH_LOG", records_per_file=60, record_bytes=200_000)
    source = make_source(emulator)
    source.final_until(SINCE)
    listed = source._files(SINCE, SINCE + 86400)[0]  # the listing's metadata of the file
    url = emulator.signed_url(log_file)
    values, chunks, records = JsonValues(), [0], [0]

    def consume(chunk: bytes) -> None:
        chunks[0] = max(chunks[0], len(chunk))
        for raw in values.feed(chunk):
            records[0] = max(records[0], len(raw))

    storage = Storage(timeout=10, deadline=60, max_bytes=1 << 30)
    try:
        size = storage.read(url, listed, consume)
    finally:
        storage.close()
    assert size > 12_000_000
    assert values.peak <= records[0] + chunks[0]
    assert values.peak < size / 20


def test_a_file_over_max_file_bytes_is_refused_before_download(
    emulator: ComplianceEmulator,
) -> None:
    """The listed size over the cap fails the window at once, naming the key to raise."""
    emulator.add_files("AUTH_LOG", records_per_file=4, record_bytes=2000)
    source = make_source(emulator, max_file_bytes=4096)
    until = source.final_until(SINCE)
    with pytest.raises(SourceUnavailableError, match="max_file_bytes"):
        source.fetch_pass(SINCE, until, "AUTH_LOG")
    assert emulator.stats.download_requests == 0


def test_a_record_that_is_not_utf8_or_too_deep_is_a_defect() -> None:
    """read_record classifies what cannot be a record; an object is one, dated at its file."""
    bad = read_record(b'{"event_id":"\xff"}', "T", 5, None)
    assert isinstance(bad, Defect) and bad.kind == "not_utf8"
    deep = read_record(b"[" * 2000 + b"]" * 2000, "T", 5, None)
    assert isinstance(deep, Defect) and deep.kind in ("too_deep", "not_an_event")
    record = read_record(b'{"event_id":"x"}', "T", 5, "org")
    assert isinstance(record, ComplianceRecord)
    assert (record.id, record.type, record.effective_at) == ("x", "T", 5)


# errors


def test_429_with_and_without_retry_after_is_retried(emulator: ComplianceEmulator) -> None:
    """Rate limits on the listing and the download are waited out (Retry-After as a floor)."""
    emulator.add_files("AUTH_LOG")
    emulator.inject(ComplianceFault("429", where="list", retry_after="7"))
    emulator.inject(ComplianceFault("429", where="download"))
    emulator.inject(ComplianceFault("503", where="storage"))
    sleeps = Sleeps()
    source = make_source(emulator, sleeps=sleeps)
    assert set(read_all(source)) == ids(emulator)
    assert source.retries == 3 and len(sleeps) == 3
    assert sleeps[0] >= 7


def test_5xx_past_the_retries_is_unavailable(emulator: ComplianceEmulator) -> None:
    """A listing failing every attempt ends as SourceUnavailableError after retry_max_attempts."""
    emulator.inject(ComplianceFault("502", where="list", count=10))
    with pytest.raises(SourceUnavailableError, match="HTTP 502"):
        make_source(emulator, retry_max_attempts=3).final_until(SINCE)
    assert emulator.stats.list_requests == 3


def test_a_rejected_key_says_what_to_ask_openai_for(emulator: ComplianceEmulator) -> None:
    """401: a Compliance API key with read scope, or a workspace Admin key; never the key."""
    with pytest.raises(SourceRefusedError) as caught:
        make_source(emulator, key="sk-proj-wrong-key-0123456789").final_until(SINCE)
    message = str(caught.value)
    assert "HTTP 401" in message and "read scope" in message and "Admin key" in message
    assert "sk-proj-wrong-key-0123456789" not in message


def test_a_missing_grant_names_the_event_type_and_the_permission(
    emulator: ComplianceEmulator,
) -> None:
    """403: the event type's log category and who grants the permission."""
    with pytest.raises(SourceRefusedError) as caught:
        make_source(emulator, "CODEX_LOG", key=NO_GRANT).final_until(SINCE)
    message = str(caught.value)
    assert "HTTP 403" in message and "CODEX_LOG" in message and "read permission" in message
    assert NO_GRANT not in message


def test_an_unknown_workspace_is_a_404_naming_the_scope(emulator: ComplianceEmulator) -> None:
    """404: the scope is not known there; check source.scope and base_url."""
    other = "workspaces/00000000-0000-4000-8000-000000000000"
    with pytest.raises(SourceRefusedError, match="HTTP 404") as caught:
        make_source(emulator, scope=other).final_until(SINCE)
    assert other in str(caught.value) and "source.scope" in str(caught.value)


def test_secrets_stay_out_of_logs_errors_and_the_quarantine(
    emulator: ComplianceEmulator, tmp_path: Path
) -> None:
    """Neither the key nor a signed URL's signature appears in any log line, error or quarantine
    record, through retries of expired URLs and storage failures."""
    (log_file,) = emulator.add_files("AUTH_LOG", end_times=[START + timedelta(seconds=5)])
    emulator.inject(ComplianceFault("expired_url", where="download", count=2))
    emulator.inject(ComplianceFault("503", where="storage"))
    emulator.inject(ComplianceFault("checksum", where="storage", probability=1.0))
    source = make_source(emulator, retry_max_attempts=4)
    source.quarantine = Quarantine(tmp_path / "q.jsonl", "q")
    with capture_logs() as logs, pytest.raises(SourceUnavailableError) as caught:
        read_all(source)
    text = repr(logs) + str(caught.value)
    signature = emulator.signed_url(log_file).split("sig=")[1]
    assert logs and "storage answered HTTP 403" in text
    assert KEY not in text and "sig=" not in text and signature[:16] not in text
    assert not (tmp_path / "q.jsonl").exists() or KEY not in (tmp_path / "q.jsonl").read_text()


def test_probe_lists_and_downloads_one_file(emulator: ComplianceEmulator) -> None:
    """`shipper check` lists one page and downloads its first file."""
    emulator.add_files("AUTH_LOG", start=START.replace(year=2026, month=12) - timedelta(days=3))
    source = make_source(emulator, retention=400 * 86400)
    verdict = source.probe()
    assert "key accepted for AUTH_LOG" in verdict and "downloaded eclf_" in verdict
    assert emulator.stats.list_requests == 1 and emulator.stats.files_served == 1


def test_the_end_time_second_is_the_floor() -> None:
    """A file ending at .999999 belongs to its second, not the next one."""
    micros = parse_time("2026-07-20T00:00:00.999999Z")
    assert LogFile("x", "T", micros).second == SINCE


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 4096])
def test_the_value_cutter_reads_lines_glued_objects_and_pretty_printing_in_any_chunking(
    chunk: int,
) -> None:
    """Lines, objects glued together, a pretty-printed object, escapes and brackets inside
    strings and blank lines come out as the same values whatever the chunk boundaries."""
    records = [
        b'{"event_id":"a","t":"quote \\" and backslash \\\\ and } ] {"}',
        b'{"event_id":"b","n":[1,{"x":"]"}]}',
        b'{"event_id":"c"}',
        b'{\n  "event_id": "d",\n  "list": [\n    1\n  ]\n}',
        b"42",
    ]
    body = records[0] + b"\n\n" + records[1] + records[2] + b"  \r\n" + records[3] + b"\n"
    body += records[4] + b"\n   \n"
    values, out = JsonValues(), []
    for at in range(0, len(body), chunk):
        out += list(values.feed(body[at : at + chunk]))
    assert values.finish() is None
    assert out == records
    assert values.peak <= max(map(len, records)) + 2 * chunk + 8
    pretty = read_record(records[3], "T", 0, None)
    assert isinstance(pretty, ComplianceRecord) and b"\n" not in pretty.json


def test_an_error_body_echoing_the_request_headers_does_not_leak_the_key() -> None:
    """An API that quotes the request's headers in its error: the refusal carries its words,
    the Authorization header masked, and no log line holds the key."""

    def echo(request: Recorded) -> Reply:
        quoted = ", ".join(f"{k}: {v}" for k, v in request.headers.items())
        return Reply.json(400, {"error": {"message": f"bad request; headers were {quoted}"}})

    with Receiver(echo) as receiver, capture_logs() as logs:
        source = handmade_source(f"{receiver.url}/v1/compliance")
        with pytest.raises(SourceRefusedError, match="headers were") as caught:
            source.final_until(SINCE)
    assert "authorization" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(logs)


def test_the_value_cutter_agrees_with_a_json_parser_on_random_streams() -> None:
    """200 seeded random streams (values glued, on lines, pretty-printed, strings full of
    brackets and escapes) cut at random points give back exactly the values written."""
    rng = random.Random(7)
    alphabet = ['"', "\\", "{", "}", "[", "]", "\n", " ", "a", "é"]
    for _ in range(200):
        values = []
        for n in range(rng.randint(1, 12)):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            doc = {"event_id": str(n), "t": text, "l": [text, {"k": text}]}
            values.append(orjson.dumps(doc, option=orjson.OPT_INDENT_2 if n % 3 == 0 else 0))
        seps = [rng.choice([b"", b"\n", b" \r\n", b"\n\n  "]) for _ in values]
        body = b"".join(v + s for v, s in zip(values, seps, strict=True))
        cutter, out, at = JsonValues(), [], 0
        while at < len(body):
            step = rng.randint(1, 40)
            out += list(cutter.feed(body[at : at + step]))
            at += step
        assert cutter.finish() is None
        assert out == values
