"""Defensive body parsing: anything but one well-formed page is retryable, never an empty page."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.errors import RetryableResponseError
from shipper.source_parse import error_message, parse_page

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
        b'{"object":"list","data":[{"no_id":1}],"has_more":false}',
        b'{"object":"list","data":[],"has_more":true,"last_id":null}',
        b'{"object":"list","data":[{"id":"","effective_at":1}],"has_more":false}',
        b'{"object":"list","data":[{"id":"a","effective_at":true}],"has_more":false}',
        b'{"object":"list","data":[{"id":"a","effective_at":1e300}],"has_more":false}',
        b'{"object":"list","data":[7],"has_more":false}',
        b'{"object":"list","data":[{"id":"a","effective_at":1,"x":"\xff"}],"has_more":false}',
        b'{"object":"list","data":[{"id":"a","effective_at":1,"x":"\\ud800"}],"has_more":false}',
    ],
    ids=[
        "truncated",
        "concatenated",
        "html",
        "empty",
        "array",
        "no-data",
        "bad-has-more",
        "no-id",
        "no-cursor",
        "empty-id",
        "bool-time",
        "huge-time",
        "not-an-object",
        "not-utf8-in-a-field-not-read",
        "lone-surrogate",
    ],
)
def test_unusable_bodies_are_retryable(body: bytes) -> None:
    """Truncated, concatenated, HTML and malformed bodies raise RetryableResponseError."""
    with pytest.raises(RetryableResponseError, match="unusable response body"):
        parse_page(body)


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
