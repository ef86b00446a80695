"""The compliance source's listing against the emulator: paging, boundary files, watermarks, the
anomaly guard, and bodies the peers saw (concatenated, foreign types, missing fields)."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from shipper.emulator.compliance import ComplianceEmulator, ComplianceFault
from shipper.errors import RetryableResponseError, SourceUnavailableError
from shipper.source.chatgpt_compliance.listing import format_after, parse_listing, parse_time
from tests.source.compliance.conftest import SINCE, START, make_source, read_all


@pytest.mark.parametrize("inclusive", [True, False])
def test_every_file_is_read_once_across_pages_whether_after_is_inclusive_or_not(
    emulator: ComplianceEmulator, inclusive: bool
) -> None:
    """Small pages (the boundary file re-listed or not) reach every file, each downloaded once."""
    emulator.after_inclusive = inclusive
    files = emulator.add_files("AUTH_LOG", count=23, records_per_file=2)
    source = make_source(emulator, page_size=5)
    found = read_all(source)
    assert set(found) == {r["event_id"] for r in emulator.records("AUTH_LOG")}
    assert emulator.stats.download_requests == len(files)
    assert emulator.stats.list_requests >= 5


@pytest.mark.parametrize("inclusive", [True, False])
def test_a_file_ending_exactly_at_the_window_start_is_in_the_window(
    emulator: ComplianceEmulator, inclusive: bool
) -> None:
    """The first `after` is a microsecond early, so the boundary file comes back in both modes."""
    emulator.after_inclusive = inclusive
    (first,) = emulator.add_files("AUTH_LOG", end_times=[START])
    source = make_source(emulator)
    assert source.final_until(SINCE) == SINCE + 1
    assert source.fetch_pass(SINCE, SINCE + 1, "AUTH_LOG").parts == {first.id: SINCE}


@pytest.mark.parametrize("null_on_empty", [True, False])
def test_an_empty_listing_leaves_the_watermark_where_it_was(
    emulator: ComplianceEmulator, null_on_empty: bool
) -> None:
    """Nothing listed (last_end_time null, or echoing after): final_until is `since` itself."""
    emulator.null_last_end_time_on_empty = null_on_empty
    emulator.add_files("AUTH_LOG", end_times=[START - timedelta(hours=1)])
    source = make_source(emulator)
    assert source.final_until(SINCE) == SINCE
    assert source.fetch_pass(SINCE, SINCE, "AUTH_LOG") == {}


def test_the_watermark_is_the_second_after_the_newest_file(emulator: ComplianceEmulator) -> None:
    """last_end_time equal to the last file's end_time: the cycle may read through its second."""
    emulator.add_files("AUTH_LOG", end_times=[START + timedelta(seconds=90, microseconds=5)])
    assert make_source(emulator).final_until(SINCE) == SINCE + 91


def test_a_last_end_time_past_every_file_is_the_watermark(emulator: ComplianceEmulator) -> None:
    """A window-end last_end_time later than every file moves the watermark to it, not the files."""
    emulator.add_files("AUTH_LOG", end_times=[START + timedelta(seconds=30)])
    emulator.last_end_time_mode = "watermark"
    emulator.watermark = START + timedelta(minutes=10)
    assert make_source(emulator).final_until(SINCE) == SINCE + 601


def test_the_listing_is_made_once_per_cycle_for_all_its_windows(
    emulator: ComplianceEmulator,
) -> None:
    """Windows inside the cycle's listing are served from it: no listing request per window."""
    emulator.add_files("AUTH_LOG", count=12, spacing=600)
    source = make_source(emulator)
    until = source.final_until(SINCE)
    listed = emulator.stats.list_requests
    total = 0
    for start in range(SINCE, until, 1800):
        total += len(source.fetch_pass(start, min(start + 1800, until), "AUTH_LOG"))
    assert emulator.stats.list_requests == listed
    assert total == len(emulator.records("AUTH_LOG"))


def test_a_page_whose_last_end_time_does_not_advance_is_an_anomaly_that_ends_the_run(
    emulator: ComplianceEmulator,
) -> None:
    """More files at one end_time than a page holds: has_more with a cursor stuck at `after` is
    retried a bounded number of times, then fails the run with a message saying why."""
    tie = START + timedelta(minutes=5)
    emulator.add_files("AUTH_LOG", end_times=[tie, tie, tie])
    source = make_source(emulator, page_size=2, retry_max_attempts=3)
    with pytest.raises(SourceUnavailableError, match="did not move past after") as caught:
        source.final_until(SINCE)
    assert "listing anomaly" in str(caught.value)
    assert emulator.stats.list_requests == 1 + 3  # the first page, then the stuck one 3 times


def test_a_listing_body_of_two_concatenated_documents_is_read(
    emulator: ComplianceEmulator,
) -> None:
    """A listing answered as the same JSON document twice in a row still lists each file once."""
    emulator.add_files("AUTH_LOG", count=3)
    emulator.inject(ComplianceFault("concatenated", where="list"))
    source = make_source(emulator)
    found = read_all(source)
    assert set(found) == {r["event_id"] for r in emulator.records("AUTH_LOG")}
    assert emulator.stats.download_requests == 3
    assert source.retries == 0


def test_a_listing_without_checksums_is_read(emulator: ComplianceEmulator) -> None:
    """file_sha256 is optional: files listed without one are downloaded and delivered."""
    emulator.include_sha256 = False
    emulator.add_files("AUTH_LOG", count=2)
    assert len(read_all(make_source(emulator))) == len(emulator.records("AUTH_LOG"))


def test_files_of_another_event_type_are_skipped_and_optional_fields_may_be_missing() -> None:
    """A foreign event_type is counted and left out; size, checksum and name are optional."""
    body = orjson.dumps(
        {
            "data": [
                {"id": "eclf_a", "event_type": "AUTH_LOG", "end_time": "2026-07-20T00:00:01Z"},
                {"id": "eclf_b", "event_type": "APP_LOG", "end_time": "2026-07-20T00:00:02Z"},
            ],
            "has_more": False,
            "last_end_time": None,
        }
    )
    page = parse_listing(body, "AUTH_LOG")
    assert [f.id for f in page.files] == ["eclf_a"]
    assert page.foreign == {"APP_LOG": 1}
    assert page.files[0].size is None and page.files[0].sha256 is None
    assert page.newest == parse_time("2026-07-20T00:00:01Z")  # null last_end_time: the files


def test_a_listed_file_without_an_end_time_makes_the_page_unusable() -> None:
    """A file that cannot be placed in time is never dropped silently: the page is retried."""
    body = b'{"data":[{"id":"eclf_a","event_type":"AUTH_LOG"}],"has_more":false}'
    with pytest.raises(RetryableResponseError, match="no end_time"):
        parse_listing(body, "AUTH_LOG")


def test_after_is_sent_in_utc_with_microseconds_and_an_explicit_z() -> None:
    """The `after` parameter round-trips through parse_time and carries its `Z`."""
    micros = parse_time("2026-07-20T10:24:53.814285+02:00")
    assert format_after(micros) == "2026-07-20T08:24:53.814285Z"
    assert parse_time(format_after(micros)) == micros


def test_files_every_sink_holds_are_not_downloaded_again(emulator: ComplianceEmulator) -> None:
    """`skip` names files already delivered: they are neither downloaded nor named as parts."""
    files = emulator.add_files("AUTH_LOG", count=4)
    source = make_source(emulator)
    until = source.final_until(SINCE)
    found = source.fetch_pass(SINCE, until, "AUTH_LOG", skip=frozenset(f.id for f in files[:3]))
    assert set(found.parts) == {files[3].id}
    assert emulator.stats.download_requests == 1
    assert set(found) == {r["event_id"] for r in emulator.file_records(files[3])}
