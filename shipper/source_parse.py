"""Defensive parsing of one list response from the audit-log API.

Bodies have been seen truncated, concatenated (several JSON documents back to back) and as
HTML error pages behind a 200. Anything that is not exactly one well-formed list page is a
retryable failure: it is never read as an empty page and never silently skipped.

The page is read with msgspec, not decoded into dicts: each event stays the exact bytes the API
sent (`msgspec.Raw`), and only the fields the pipeline needs (id, effective_at, type) are read
out of it. That is about half the work of building every event's dict and encoding it again,
and the event reaches the sinks byte for byte as the API sent it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import orjson

from shipper.errors import RetryableResponseError
from shipper.model import AuditEvent


class _Page(msgspec.Struct, gc=False):
    data: list[msgspec.Raw]
    has_more: bool
    last_id: str | None = None


class _Head(msgspec.Struct, gc=False):
    """What the pipeline reads of an event; every other field is carried along untouched."""

    id: Annotated[str, msgspec.Meta(min_length=1)]
    effective_at: int | float
    type: Any = None


class _Heads(msgspec.Struct, gc=False):
    data: list[_Head]


_MAX_SECONDS = 1 << 40  # far past any date; also keeps int() away from inf

# The page is decoded twice, each time in one call: once into the events' bytes, once into
# what is read of them; a third cheaper than decoding each event's bytes from Python.
_read_page = msgspec.json.Decoder(_Page).decode
_read_heads = msgspec.json.Decoder(_Heads).decode


@dataclass(frozen=True, slots=True)
class Page:
    events: list[AuditEvent]
    has_more: bool
    last_id: str | None


def _fail(reason: str) -> RetryableResponseError:
    return RetryableResponseError(f"unusable response body: {reason}")


def parse_page(body: bytes, organization: str | None = None) -> Page:
    """One list page, or `RetryableResponseError` saying what was wrong with the body."""
    try:
        if b"\n" in body or b"\r" in body:
            # Pretty-printed (JSON strings cannot hold a raw line break): make every event one
            # line, as the JSON-lines and syslog sinks need it.
            body = msgspec.json.format(body, indent=-1)
        if not body.isascii():
            # msgspec does not check the strings it only carries (Raw): orjson, which the
            # renderers read events with, would reject the event later, far from its cause.
            body.decode("utf-8")
        doc = _read_page(body)
    except UnicodeDecodeError as exc:
        raise _fail(f"not UTF-8 ({len(body)} bytes; {exc.reason} at byte {exc.start})") from None
    except msgspec.DecodeError as exc:
        if isinstance(exc, msgspec.ValidationError):
            raise _fail(f"not an audit-log list page ({exc})") from None
        stripped = body.lstrip()[:1]
        kind = "an HTML page" if stripped == b"<" else "not one complete JSON document"
        raise _fail(f"{kind} ({len(body)} bytes; {exc})") from None
    try:
        heads = _read_heads(body).data
    except msgspec.ValidationError as exc:
        raise _fail(f"an entry is not an audit-log object with an id ({exc})") from None
    events: list[AuditEvent] = []
    append, intern = events.append, sys.intern
    for head, raw in zip(heads, doc.data, strict=True):  # per event: plain, inlined steps
        when, kind = head.effective_at, head.type
        if not -_MAX_SECONDS < when < _MAX_SECONDS:
            raise _fail(f"entry {head.id!r} has effective_at {when!r}, not a time")
        kind = intern(kind) if kind.__class__ is str else "unknown"
        # bytes(raw): a copy of its own, so the page body is freed with the page
        append(AuditEvent(head.id, kind, int(when), None, organization, json=bytes(raw)))
    last_id = doc.last_id or (events[-1].id if events else None)
    if doc.has_more and not last_id:
        raise _fail("'has_more' is true but there is no last_id to continue from")
    return Page(events=events, has_more=doc.has_more, last_id=last_id)


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
