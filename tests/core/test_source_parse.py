"""Defensive body parsing: a damaged body is retryable, never an empty page; one unreadable
entry of a sound page is a defect of its own, and the page's other events are kept."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.errors import RetryableResponseError
from shipper.source.audit_log.parse import Defect, error_message, parse_entry, parse_page

GOOD = {
    "object": "list",
    "data": [{"id": "a", "effective_at": 1}],
    "has_more": True,
    "last_id": "a",
}


def test_parses_a_well_formed_page() -> None:
    """A list page yields its events, has_more and last_id."""
    page = parse_page(orjson.dumps(GOOD), "acme")
    assert page.has_more and page.last_id == "a"
    [event] = page.events
    assert (event.id, event.effective_at, event.type, event.organization) == (
        "a",
        1,
        "unknown",
        "acme",
    )


def test_events_keep_the_bytes_the_api_sent() -> None:
    """Each event is the API's own JSON, byte for byte: key order, escapes and numbers untouched."""
    event = b'{"id":"b","type":"login.succeeded","effective_at":7,"x":"\\u00e9\\/","n":1.50}'
    page = parse_page(b'{"object":"list","data":[' + event + b'],"has_more":false}')
    assert page.events[0].json == event
    assert page.events[0].type == "login.succeeded" and page.last_id == "b"


def test_pretty_printed_pages_give_one_line_events() -> None:
    """An indented body (as APIs often send) still yields events that fit on one line each."""
    body = json.dumps({**GOOD, "data": [{"id": "a", "effective_at": 1, "s": "x\ny"}]}, indent=2)
    [event] = parse_page(body.encode()).events
    assert b"\n" not in event.json and orjson.loads(event.json) == {
        "id": "a",
        "effective_at": 1,
        "s": "x\ny",
    }


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps(GOOD)[:-7],
        orjson.dumps(GOOD) + orjson.dumps(GOOD),
        b"<html><body>502 Bad Gateway</body></html>",
        b"",
        b"[]",
        b'{"object":"list","has_more":false}',
        b'{"object":"list","data":[],"has_more":"no"}',
        b'{"object":"list","data":[],"has_more":true,"last_id":null}',
        b'{"object":"list","data":[{"id":"a","effective_at":1},],"has_more":false}',
        b'{"object":"list","data":[{"id":"a","effective_at":1}],"has_more":false,"x":"\xff"}',
        b'{"object":"list","data":[{"id":"a","effective_at":1,"x":"\\ud800"}],"has_more":tru}',
        b'{"object":"list","data":[{"id":"a","effective_at":1,"x":"\\ud800"}],"has_',
        b'{"object":"list","data":[{"id":"a","effective_at":1,"x":"\\ud800"}]]',
        b'{"object":"list","data":[{"id":"a","effective_at":1,"x":"\\ud800}],"has_more":false}',
    ],
    ids=[
        "truncated",
        "concatenated",
        "html",
        "empty",
        "array",
        "no-data",
        "bad-has-more",
        "no-cursor",
        "empty-entry",
        "not-utf8-outside-the-entries",
        "poison-entry-in-a-broken-envelope",
        "poison-entry-in-a-truncated-body",
        "poison-entry-and-mismatched-brackets",
        "string-never-ends",
    ],
)
def test_unusable_bodies_are_retryable(body: bytes) -> None:
    """Truncated, concatenated, HTML and malformed bodies raise RetryableResponseError, also
    when an entry in them is unreadable too."""
    with pytest.raises(RetryableResponseError, match="unusable response body"):
        parse_page(body)


DEEP = b"[" * 5000 + b"]" * 5000
POISON = {
    "lone-surrogate": b'{"id":"p","effective_at":5,"actor":{"x":"\\ud800"}}',
    "lone-low-surrogate": b'{"id":"p","effective_at":5,"x":"\\udc00"}',
    "no-id": b'{"effective_at":5,"type":"login.succeeded"}',
    "empty-id": b'{"id":"","effective_at":5}',
    "number-id": b'{"id":42,"effective_at":5}',
    "text-time": b'{"id":"p","effective_at":"yesterday"}',
    "bool-time": b'{"id":"p","effective_at":true}',
    "year-10000": b'{"id":"p","effective_at":253402300800}',
    "huge-time": b'{"id":"p","effective_at":1e300}',
    "before-year-1": b'{"id":"p","effective_at":-62135596801}',
    "too-deep": b'{"id":"p","effective_at":5,"d":' + DEEP + b"}",
    "not-utf8": b'{"id":"p","effective_at":5,"x":"\xff"}',
    "not-an-object": b"7",
}


@pytest.mark.parametrize("kind", list(POISON))
def test_one_unreadable_entry_is_a_defect_and_the_page_is_kept(kind: str) -> None:
    """An unreadable entry in the middle of a page is set apart with its bytes and a reason;
    the events around it are kept and the cursor still moves past it."""
    poison = POISON[kind]
    body = (
        b'{"object":"list","data":[{"id":"a","effective_at":1},'
        + poison
        + b',{"id":"b","effective_at":2}],"has_more":true,"last_id":"b"}'
    )
    page = parse_page(body, "acme")
    assert [e.id for e in page.events] == ["a", "b"]
    assert page.has_more and page.last_id == "b"
    [defect] = page.defects
    assert defect.raw == poison and defect.reason
    assert defect.id == ("p" if b'"id":"p"' in poison else None)


def test_pretty_printed_page_with_an_unreadable_entry_keeps_the_others_on_one_line() -> None:
    """The one-line promise holds on the slow path too."""
    body = json.dumps(
        {"data": [{"id": "a", "effective_at": 1, "s": "x"}, {"id": "b"}], "has_more": False},
        indent=2,
    ).encode()
    page = parse_page(body)
    assert [e.json for e in page.events] == [b'{"id":"a","effective_at":1,"s":"x"}']
    assert len(page.defects) == 1 and page.last_id == "b"


def test_a_page_without_last_id_continues_after_its_last_entry_even_when_unreadable() -> None:
    """The cursor falls back to the last entry's id, read from an entry that does not decode."""
    body = b'{"data":[{"id":"a","effective_at":1},{"id":"z","effective_at":1,"x":"\\ud800"}],"has_more":true}'
    page = parse_page(body)
    assert page.last_id == "z" and [d.id for d in page.defects] == ["z"]


def test_entries_at_the_edges_of_renderable_time_are_events() -> None:
    """Years 1 and 9999 are times every renderer can write."""
    for when in (-62135596800, 253402300799, 1.5):
        assert not isinstance(parse_entry(orjson.dumps({"id": "a", "effective_at": when})), Defect)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_arbitrary_json_never_crashes_the_parser(doc: object) -> None:
    """Any JSON document either parses into a page or raises the retryable error, nothing else."""
    try:
        page = parse_page(json.dumps(doc).encode())
    except RetryableResponseError:
        return
    assert isinstance(page.events, list)


def test_error_message_reads_openai_errors() -> None:
    """The OpenAI error envelope's message is extracted for the operator."""
    assert error_message(b'{"error":{"message":"nope","type":"x"}}') == "nope"
    assert error_message(b"<html>") is None
