"""The listing of log files: one page read defensively, and the cursor rules for the next one.

`GET {base}/{scope}/logs?event_type=T&after=<time>&limit=N` answers files oldest `end_time`
first with `has_more` and `last_end_time` (API.md §3.1, §4). What is known only from peers is
read tolerantly: a body of several JSON documents back to back (their files merged), a file of
another event type (skipped, with a warning), missing optional fields (`file_size`,
`file_sha256`, `file_name`), a null `last_end_time` (the page's newest `end_time` instead, and
on an empty page: nothing new). A file without a usable id or `end_time` cannot be placed or
downloaded, so such a page is an unusable answer (retried), never silently thinned.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from shipper.errors import RetryableResponseError
from shipper.source.chatgpt_compliance.records import JsonValues

# RFC 3339 with any number of fractional digits (cut to microseconds) and an offset.
_TIME = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", re.IGNORECASE
)


def parse_time(text: str) -> int:
    """Microseconds since the epoch of an RFC 3339 time; ValueError if it is not one."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"not an RFC 3339 time with an offset: {text!r}")
    seconds, fraction, offset = match.groups()
    offset = "+00:00" if offset.upper() == "Z" else offset
    when = dt.datetime.fromisoformat(seconds + offset)
    return int(when.timestamp()) * 1_000_000 + int((fraction or "0")[:6].ljust(6, "0"))


def format_after(micros: int) -> str:
    """The `after` parameter: UTC, microseconds, an explicit `Z` (a naive time is UNKNOWN)."""
    seconds, fraction = divmod(micros, 1_000_000)
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:06d}Z"


@dataclass(frozen=True, slots=True)
class LogFile:
    """What the listing says of one file (metadata only: a cycle keeps these, never bodies)."""

    id: str
    event_type: str
    end_micros: int
    size: int | None = None
    sha256: str | None = None

    @property
    def second(self) -> int:
        """The file's cursor key: the whole second of its `end_time` (floor)."""
        return self.end_micros // 1_000_000


@dataclass(slots=True)
class ListingPage:
    files: list[LogFile] = field(default_factory=list)
    has_more: bool = False
    last_end_micros: int | None = None  # `last_end_time`, None when null or absent
    foreign: dict[str, int] = field(default_factory=dict)  # other event types seen: how many

    @property
    def newest(self) -> int | None:
        """The page's watermark: `last_end_time`, else its newest file's `end_time`."""
        ends = [f.end_micros for f in self.files]
        if self.last_end_micros is not None:
            ends.append(self.last_end_micros)
        return max(ends) if ends else None


_documents = msgspec.json.Decoder(Any)


def _unusable(reason: str) -> RetryableResponseError:
    return RetryableResponseError(f"unusable listing body: {reason}")


def _split_documents(body: bytes) -> list[Any]:
    """The JSON documents of a body (usually one; peers saw several back to back)."""
    values = JsonValues()
    docs = []
    try:
        for raw in values.feed(body):
            docs.append(_documents.decode(raw))
        rest = values.finish()
        if rest is not None:
            docs.append(_documents.decode(rest))
    except (msgspec.DecodeError, RecursionError) as exc:
        raise _unusable(f"not JSON ({exc})") from None
    if not docs:
        raise _unusable("empty")
    return docs


def _file(item: Any, index: int) -> LogFile:
    if not isinstance(item, dict):
        raise _unusable(f"data[{index}] is not an object")
    file_id, end_time = item.get("id"), item.get("end_time")
    if not isinstance(file_id, str) or not file_id or "/" in file_id or file_id in (".", ".."):
        raise _unusable(f"data[{index}] has no usable id")
    if not isinstance(end_time, str):
        raise _unusable(f"data[{index}] ({file_id}) has no end_time")
    try:
        end_micros = parse_time(end_time)
    except ValueError as exc:
        raise _unusable(f"data[{index}] ({file_id}): {exc}") from None
    size, sha256 = item.get("file_size"), item.get("file_sha256")
    return LogFile(
        file_id,
        str(item.get("event_type") or ""),
        end_micros,
        size if isinstance(size, int) and size >= 0 else None,
        sha256.lower() if isinstance(sha256, str) and sha256 else None,
    )


def parse_listing(body: bytes, event_type: str) -> ListingPage:
    """One listing answer, or `RetryableResponseError` saying what was wrong with it."""
    page = ListingPage()
    seen: set[str] = set()
    for doc in _split_documents(body):
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise _unusable("no data array")
        if not isinstance(doc.get("has_more"), bool):
            raise _unusable("no has_more flag")
        page.has_more = page.has_more or doc["has_more"]
        last = doc.get("last_end_time")
        if isinstance(last, str):
            try:
                micros = parse_time(last)
            except ValueError as exc:
                raise _unusable(f"last_end_time: {exc}") from None
            page.last_end_micros = max(page.last_end_micros or micros, micros)
        for index, item in enumerate(doc["data"]):
            log_file = _file(item, index)
            if log_file.event_type and log_file.event_type != event_type:
                page.foreign[log_file.event_type] = page.foreign.get(log_file.event_type, 0) + 1
            elif log_file.id not in seen:
                seen.add(log_file.id)
                page.files.append(log_file)
    return page


def error_message(body: bytes) -> str | None:
    """The API's own words from an error body (`{"error": {"message": ...}}`), else its start."""
    try:
        doc = _documents.decode(body)
    except (msgspec.DecodeError, RecursionError):
        text = body[:1000].decode("utf-8", "replace").strip()
        return text or None
    if isinstance(doc, dict):
        error = doc.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])[:1000]
        if isinstance(error, str):
            return error[:1000]
    return None
