"""A log file's body as a stream of JSON values, and each value read as a `ComplianceRecord`.

Files are JSON Lines in the samples, but peers saw objects glued together with no newline
between them (API.md §3.2), so the body is cut into JSON values by their brackets, not by lines:
blank lines, trailing whitespace and concatenated objects all read the same. The cutter holds
at most the record being read plus the chunk that completes it (`JsonValues.peak`), whatever
the size of the file, and each record is kept as its exact bytes.

A value that is not a readable record (not JSON, not an object, not UTF-8) is a `Defect` for
the quarantine; the file's other records are delivered. A record without a string `event_id`
gets a deterministic one, `sha256:` and the hex digest of its bytes, so that the same record
listed again (in another file, or a later cycle) collapses to one as those with an id do; it is
delivered, not quarantined, since it is readable and a SIEM would rather have it (counted and
logged as `records_without_event_id`).
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import msgspec

from shipper.model.event import ComplianceRecord
from shipper.source.audit_log.parse import Defect

# Where a value's brackets or strings may start or end; inside a string, where it may end.
_STRUCTURE = re.compile(rb'[{}\[\]"]')
_IN_STRING = re.compile(rb'["\\]')
_WHITESPACE = b" \t\r\n"
# A top-level value that is not an object or array (a stray number, a word): it ends here.
_SCALAR_END = re.compile(rb"[\s{}\[\]\"]")


class JsonValues:
    """Cuts a byte stream into top-level JSON values; feed chunks, then `finish`.

    Only the bytes of the value being read stay held; `peak` is the most ever held, the
    memory bound the tests measure.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._start = 0  # where the current value (or the whitespace before it) starts
        self._pos = 0  # how far the current value has been scanned
        self._depth = 0
        self._in_string = False
        self._newline = -1  # the next newline at or after `_start`, when known
        self._searched = 0  # no newline before this offset (from `_start` on)
        self.peak = 0

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        """The values completed by `chunk`, each as its exact bytes."""
        self._buf += chunk
        self.peak = max(self.peak, len(self._buf))
        while (value := self._next()) is not None:
            yield value
        if self._start:  # drop what was handed on: only the unfinished value stays held
            del self._buf[: self._start]
            self._newline = self._newline - self._start if self._newline >= self._start else -1
            self._searched = max(self._searched - self._start, 0)
            self._pos -= self._start
            self._start = 0

    def finish(self) -> bytes | None:
        """What is left at the end of the stream: an unfinished value's bytes, or None."""
        rest = bytes(self._buf[self._start :]).strip(_WHITESPACE)
        self._buf.clear()
        self._start = self._pos = self._depth = self._searched = 0
        self._newline = -1
        self._in_string = False
        return rest or None

    def _next(self) -> bytes | None:
        if self._depth == 0 and not self._in_string:
            return self._between_values()
        return self._scan()

    def _between_values(self) -> bytes | None:
        """Skip whitespace; read the value starting at the next byte."""
        buf = self._buf
        start, end = self._start, len(buf)
        while start < end and buf[start] in _WHITESPACE:
            start += 1
        self._start = self._pos = start
        if start == end:
            return None
        if (line := self._whole_line()) is not None:
            return line
        if buf[start] not in b"{[":
            return self._scalar()
        return self._scan()

    def _scan(self) -> bytes | None:
        """Scan the object or array being read by its brackets and strings, up to its end."""
        buf = self._buf
        pos = self._pos
        while True:
            if self._in_string:
                after = self._string_end(pos)
                if after is None:
                    return None
                pos = after
                continue
            found = _STRUCTURE.search(buf, pos)
            if found is None:
                self._pos = len(buf)
                return None
            pos = found.end()
            token = found.group()
            if token == b'"':
                self._in_string = True
            elif token in (b"{", b"["):
                self._depth += 1
            else:
                self._depth -= 1
                if self._depth <= 0:
                    self._depth = 0
                    value = bytes(buf[self._start : pos])
                    self._start = self._pos = pos
                    return value

    def _whole_line(self) -> bytes | None:
        """The common case, JSON Lines: a complete line that is exactly one JSON value, checked
        by msgspec at C speed (bracket-scanning it here would be ten times slower). None: not
        so (no newline yet, several values or a part of one on the line), and the scanner
        takes over."""
        end = self._newline
        if end < self._start:
            # Searched once per line, not once per value (glued values share a line).
            end = self._newline = self._buf.find(b"\n", max(self._start, self._searched))
            self._searched = len(self._buf) if end == -1 else end + 1
        if end == -1:
            return None
        line = bytes(self._buf[self._start : end]).rstrip(_WHITESPACE)
        try:
            _check_json(line)
        except (msgspec.DecodeError, RecursionError):
            return None
        self._start = self._pos = end + 1
        return line

    def _string_end(self, pos: int) -> int | None:
        """Past the closing quote of the string being read, or None (and where to resume) when
        it goes on in the next chunk."""
        buf = self._buf
        while True:
            found = _IN_STRING.search(buf, pos)
            if found is None:
                self._pos = len(buf)
                return None
            if found.group() == b'"':
                self._in_string = False
                return found.end()
            if found.end() >= len(buf):  # the escaped byte is in the next chunk
                self._pos = found.start()
                return None
            pos = found.end() + 1

    def _scalar(self) -> bytes | None:
        found = _SCALAR_END.search(self._buf, self._start + 1)
        if found is None:
            return None  # may go on in the next chunk; `finish` hands it over at the end
        value = bytes(self._buf[self._start : found.start()])
        self._start = self._pos = found.start()
        return value


_check_json = msgspec.json.Decoder(msgspec.Raw).decode  # validates, builds nothing


class _Head(msgspec.Struct, gc=False):
    """What is read of a record; the rest is carried along as its bytes."""

    event_id: Any = None
    type: Any = None


_read_head = msgspec.json.Decoder(_Head).decode
_read_any = msgspec.json.Decoder().decode


def synthetic_id(raw: bytes) -> str:
    """The id of a record that has no `event_id`: a digest of its exact bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def reread_quarantined(
    raw: bytes, doc: dict[str, Any], event_type: str, organization: str | None
) -> ComplianceRecord | Defect:
    """A quarantined record read again (`shipper quarantine replay`), dated at its file."""
    when = doc.get("part_time")
    return read_record(
        raw, event_type, when if isinstance(when, int) else int(doc["window_start"]), organization
    )


def read_record(
    raw: bytes, event_type: str, effective_at: int, organization: str | None
) -> ComplianceRecord | Defect:
    """One value of a file as a record (dated at its file), or the defect that it is."""
    try:
        if not raw.isascii():
            raw.decode("utf-8")  # msgspec does not check the strings it skips
    except UnicodeDecodeError:
        return Defect(raw, "not UTF-8", "not_utf8")
    try:
        head = _read_head(raw)
    except msgspec.ValidationError:
        return Defect(raw, "not a JSON object", "not_an_event")
    except RecursionError:
        return Defect(raw, "nested too deep", "too_deep")
    except msgspec.DecodeError as exc:
        return Defect(raw, f"not JSON: {exc}", "malformed")
    record_id = head.event_id if isinstance(head.event_id, str) and head.event_id else None
    kind = head.type if isinstance(head.type, str) and head.type else event_type
    if b"\n" in raw or b"\r" in raw:
        # Pretty-printed: one line, as the JSON-lines and syslog sinks need it.
        raw = msgspec.json.format(raw, indent=-1)
    return ComplianceRecord(
        record_id or synthetic_id(raw),
        sys.intern(kind),
        effective_at,
        organization=organization,
        json=raw,
    )
