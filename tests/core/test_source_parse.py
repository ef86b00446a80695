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
    """A list page yields its data, has_more and last_id."""
    page = parse_page(orjson.dumps(GOOD))
    assert page.has_more and page.last_id == "a" and page.data[0]["id"] == "a"


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
    assert isinstance(page.data, list)


def test_error_message_reads_openai_errors() -> None:
    """The OpenAI error envelope's message is extracted for the operator."""
    assert error_message(b'{"error":{"message":"nope","type":"x"}}') == "nope"
    assert error_message(b"<html>") is None
