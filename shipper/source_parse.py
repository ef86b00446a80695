"""Defensive parsing of one list response from the audit-log API.

Bodies have been seen truncated, concatenated (several JSON documents back to back) and as
HTML error pages behind a 200. Anything that is not exactly one well-formed list page is a
retryable failure: it is never read as an empty page and never silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from shipper.errors import RetryableResponseError


@dataclass(frozen=True, slots=True)
class Page:
    data: list[dict[str, Any]]
    has_more: bool
    last_id: str | None


def _fail(reason: str) -> RetryableResponseError:
    return RetryableResponseError(f"unusable response body: {reason}")


def parse_page(body: bytes) -> Page:
    """One list page, or `RetryableResponseError` saying what was wrong with the body."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        stripped = body.lstrip()[:1]
        kind = "an HTML page" if stripped == b"<" else "not one complete JSON document"
        raise _fail(f"{kind} ({len(body)} bytes; {exc})") from None
    if not isinstance(doc, dict):
        raise _fail(f"expected a JSON object, got {type(doc).__name__}")
    data, has_more, last_id = doc.get("data"), doc.get("has_more"), doc.get("last_id")
    if not isinstance(data, list):
        raise _fail("'data' is missing or not a list")
    if not isinstance(has_more, bool):
        raise _fail("'has_more' is missing or not a boolean")
    for index, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            raise _fail(f"data[{index}] is not an audit-log object with an id")
    if last_id is not None and not isinstance(last_id, str):
        raise _fail("'last_id' is not a string")
    if has_more and not (last_id or data):
        raise _fail("'has_more' is true but there is no last_id to continue from")
    return Page(data=data, has_more=has_more, last_id=last_id or (data[-1]["id"] if data else None))


def error_message(body: bytes) -> str | None:
    """The `error.message` of an OpenAI error body, if it is one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        message = doc["error"].get("message")
        return message if isinstance(message, str) else None
    return None
