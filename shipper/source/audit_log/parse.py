"""Defensive parsing of one list response from the audit-log API.

Bodies have been seen truncated, concatenated (several JSON documents back to back) and as
HTML error pages behind a 200. A body that is not one well-formed list page as a whole is a
retryable failure: it is never read as an empty page and never silently skipped. One entry of
an otherwise sound page that is not a readable audit-log event (a lone surrogate escape, no
string id, no usable effective_at, nested too deep, not UTF-8) is a `Defect`: the page's other
events are delivered and the defect goes to the quarantine (`shipper/quarantine.py`), since
retrying a page the API will always send the same way would stop the export for good.

The page is read with msgspec, not decoded into dicts: each event stays the exact bytes the API
sent (`msgspec.Raw`), and only the fields the pipeline needs (id, effective_at, type) are read
out of it. That is about half the work of building every event's dict and encoding it again,
and the event reaches the sinks byte for byte as the API sent it. Only when the page as a whole
does not decode are its entries cut apart and read one at a time (`_read_entries`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import orjson

from shipper.errors import RetryableResponseError
from shipper.model.event import AuditEvent


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


class _Ident(msgspec.Struct, gc=False):
    id: Any = None


# The times every renderer can write as RFC 3339 (years 1 to 9999); also keeps int() from inf.
EARLIEST = -62_135_596_800  # 0001-01-01T00:00:00Z
LATEST = 253_402_300_800  # 10000-01-01T00:00:00Z

# The page is decoded twice, each time in one call: once into the events' bytes, once into
# what is read of them; a third cheaper than decoding each event's bytes from Python.
_read_page = msgspec.json.Decoder(_Page).decode
_read_heads = msgspec.json.Decoder(_Heads).decode
_read_head = msgspec.json.Decoder(_Head).decode
_read_ident = msgspec.json.Decoder(_Ident).decode

# What decoding a page or an entry raises when its bytes are at fault (RecursionError: nested
# deeper than the parser allows).
_UNREADABLE = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


@dataclass(frozen=True, slots=True)
class Defect:
    """An entry of a sound page that is not a readable audit-log event, as the API sent it."""

    raw: bytes
    reason: str
    kind: str  # one of KINDS: the metric's label
    id: str | None = None


KINDS = ("not_utf8", "malformed", "too_deep", "not_an_event", "bad_time")


@dataclass(frozen=True, slots=True)
class Page:
    events: list[AuditEvent]
    has_more: bool
    last_id: str | None
    defects: tuple[Defect, ...] = ()
    request_id: str | None = None


def _fail(reason: str) -> RetryableResponseError:
    return RetryableResponseError(f"unusable response body: {reason}")


def _one_line_utf8(data: bytes) -> bytes:
    """`data` on one line, checked to be UTF-8 (`UnicodeDecodeError`, msgspec's errors if not)."""
    if b"\n" in data or b"\r" in data:
        # Pretty-printed (JSON strings cannot hold a raw line break): make every event one
        # line, as the JSON-lines and syslog sinks need it.
        data = msgspec.json.format(data, indent=-1)
    if not data.isascii():
        # msgspec does not check the strings it only carries (Raw): orjson, which the
        # renderers read events with, would reject the event later, far from its cause.
        data.decode("utf-8")
    return data


def parse_page(body: bytes, organization: str | None = None) -> Page:
    """One list page, or `RetryableResponseError` saying what was wrong with the body."""
    try:
        body = _one_line_utf8(body)
        doc = _read_page(body)
        heads = _read_heads(body).data
    except _UNREADABLE:
        return _read_entries(body, organization)  # which entry, or is it the body?
    events: list[AuditEvent] = []
    defects: list[Defect] = []
    append, intern = events.append, sys.intern
    for head, raw in zip(heads, doc.data, strict=True):  # per event: plain, inlined steps
        when, kind = head.effective_at, head.type
        if not EARLIEST <= when < LATEST:
            defects.append(_bad_time(head.id, when, bytes(raw)))
            continue
        kind = intern(kind) if kind.__class__ is str else "unknown"
        # bytes(raw): a copy of its own, so the page body is freed with the page
        append(AuditEvent(head.id, kind, int(when), None, organization, json=bytes(raw)))
    return _page(events, defects, doc, heads[-1].id if heads else None)


def _page(events: list[AuditEvent], defects: list[Defect], doc: _Page, last: str | None) -> Page:
    """The page; `last` is the id of its last entry (readable or not), the cursor's fallback."""
    last_id = doc.last_id or last
    if doc.has_more and not last_id:
        raise _fail("'has_more' is true but there is no last_id to continue from")
    return Page(events=events, has_more=doc.has_more, last_id=last_id, defects=tuple(defects))


def _bad_time(event_id: str, when: float, raw: bytes) -> Defect:
    reason = f"effective_at {when!r} is not a time between the years 1 and 9999"
    return Defect(raw, reason, "bad_time", event_id)


def parse_entry(raw: bytes, organization: str | None = None) -> AuditEvent | Defect:
    """One entry of a page on its own: the event, or the `Defect` saying why it is not one."""
    try:
        raw = _one_line_utf8(raw)
        head = _read_head(raw)
    except UnicodeDecodeError as exc:
        return Defect(raw, f"not UTF-8 ({exc.reason} at byte {exc.start})", "not_utf8", _id(raw))
    except RecursionError:
        return Defect(raw, "nested deeper than the parser allows", "too_deep", _id(raw))
    except msgspec.ValidationError as exc:
        return Defect(raw, f"not an audit-log event with an id: {exc}", "not_an_event", _id(raw))
    except msgspec.DecodeError as exc:
        return Defect(raw, f"not readable JSON: {_json_error(raw, exc)}", "malformed", _id(raw))
    if not EARLIEST <= head.effective_at < LATEST:
        return _bad_time(head.id, head.effective_at, raw)
    kind = sys.intern(head.type) if head.type.__class__ is str else "unknown"
    return AuditEvent(head.id, kind, int(head.effective_at), None, organization, json=raw)


def _json_error(raw: bytes, exc: msgspec.DecodeError) -> str:
    """orjson's account of malformed JSON: msgspec calls a lone surrogate "truncated"."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as why:
        return str(why)
    return str(exc)


def _id(raw: bytes) -> str | None:
    """The entry's id when it has a readable string one (for the quarantine and the cursor)."""
    try:
        value = _read_ident(raw).id
    except (*_UNREADABLE, msgspec.ValidationError):
        value = _scan_id(raw)
    return value if isinstance(value, str) and value else None


def _scan_id(raw: bytes) -> str | None:
    """The top-level `"id": "..."` of an entry that does not decode as a whole."""
    depth, tokens = 0, _TOKEN.finditer(raw)
    for match in tokens:
        token = match.group()
        if token[0] in _CLOSER:
            depth += 1
        elif token[0] in (0x5D, 0x7D):
            depth -= 1
        elif depth == 1 and token == b'"id"':
            colon, value = next(tokens, None), next(tokens, None)
            if colon is None or value is None or colon.group() != b":":
                return None
            try:
                found = msgspec.json.decode(value.group(), type=str)
            except msgspec.DecodeError:
                return None
            return found
    return None


def _read_entries(body: bytes, organization: str | None) -> Page:
    """The slow path: a page whose entries are read one at a time, or the body's damage."""
    try:
        data_open, data_close, spans = _Cutter(body).cut()
    except _Damaged as exc:
        raise _fail(f"{exc} ({len(body)} bytes)") from None
    try:  # the page without its entries: has_more and last_id
        envelope = body[:data_open] + body[data_close:]
        if not envelope.isascii():
            envelope.decode("utf-8")
        doc = _read_page(envelope)
    except UnicodeDecodeError as exc:
        raise _fail(f"not UTF-8 outside the entries ({exc.reason})") from None
    except msgspec.ValidationError as exc:
        raise _fail(f"not an audit-log list page ({exc})") from None
    except _UNREADABLE as exc:
        raise _fail(f"not one complete JSON document ({len(body)} bytes; {exc})") from None
    events: list[AuditEvent] = []
    defects: list[Defect] = []
    last: str | None = None
    for start, end in spans:
        entry = parse_entry(body[start:end], organization)
        if isinstance(entry, Defect):
            defects.append(entry)
            last = entry.id or last
        else:
            events.append(entry)
            last = entry.id
    return _page(events, defects, doc, last)


# A string (escapes included), a structural character, or a quote that opens a string that
# never ends (a truncated body).
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[][{},:]|"', re.DOTALL)
_CLOSER = {ord("["): ord("]"), ord("{"): ord("}")}


class _Damaged(Exception):
    """The body's structure is broken as a whole; the message says how."""


class _Cutter:
    """Where a page's entries lie, from its structure alone: strings and brackets, no depth
    limit, no decoding. Raises `_Damaged` when the body is not one JSON object."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.stack: list[int] = []  # the closers of the containers open
        self.key: bytes | None = None  # the top-level key being read, once its name is known
        self.expect_key = False
        self.data_open = self.data_close = self.entry_start = -1
        self.spans: list[tuple[int, int]] = []

    def cut(self) -> tuple[int, int, list[tuple[int, int]]]:
        lead = self.body.lstrip()[:1]
        if lead != b"{":
            raise _Damaged("an HTML page" if lead == b"<" else "not an audit-log list page")
        for match in _TOKEN.finditer(self.body):
            token, at = match.group(), match.start()
            char = token[0]
            if char == 0x22:  # '"'
                self._string(token)
            elif char in _CLOSER:
                self._open(char, at)
            elif char == 0x2C:  # ','
                self._comma(at)
            elif char != 0x3A and self._close(char, at):  # ':' needs nothing
                return self.data_open, self.data_close, self.spans
        raise _Damaged("not one complete JSON document (truncated)")

    @property
    def _in_data(self) -> bool:
        return len(self.stack) == 2 and self.data_open >= 0 > self.data_close

    def _string(self, token: bytes) -> None:
        if len(token) == 1:
            raise _Damaged("not one complete JSON document (a string never ends)")
        if len(self.stack) == 1 and self.expect_key:
            self.key, self.expect_key = token, False

    def _open(self, char: int, at: int) -> None:
        depth = len(self.stack)
        if depth == 1 and self.key == b'"data"' and char == 0x5B and self.data_open < 0:
            self.data_open = self.entry_start = at + 1
        self.expect_key = depth == 0
        self.stack.append(_CLOSER[char])

    def _comma(self, at: int) -> None:
        self.expect_key = len(self.stack) == 1
        if self._in_data:
            self._entry(at, last=False)
            self.entry_start = at + 1

    def _close(self, char: int, at: int) -> bool:
        """Close a container; True when it was the page itself."""
        in_data = self._in_data
        if not self.stack or self.stack.pop() != char:
            raise _Damaged("not one complete JSON document (brackets do not match)")
        if in_data:
            self._entry(at, last=True)
            self.data_close = at
        elif not self.stack:
            if self.body[at + 1 :].strip():
                raise _Damaged("not one complete JSON document (more after the page)")
            if self.data_open < 0:
                raise _Damaged("not an audit-log list page (no data array)")
            return True
        return False

    def _entry(self, end: int, *, last: bool) -> None:
        """Record the entry before `end` (trimmed); only `[]` may hold nothing."""
        body, start = self.body, self.entry_start
        while start < end and body[start] in b" \t\r\n":
            start += 1
        while end > start and body[end - 1] in b" \t\r\n":
            end -= 1
        if start < end:
            self.spans.append((start, end))
        elif not (last and not self.spans):
            raise _Damaged("not one complete JSON document (an empty entry)")


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
