"""Elasticsearch's `_bulk` API as pure functions: build the NDJSON body, read the answer.

Each event becomes two lines: a `create` action naming the index and `_id` = event id, then the
document. `create` (not `index`) makes a replay harmless: a document that is already there comes
back as a per-item 409 `version_conflict_engine_exception`, which counts as delivered; and data
streams accept nothing else. Both lines are serialised by orjson, which escapes every control
character, so no event content can end a line early and forge an action.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from shipper.sink_api import (
    SERVER_ERRORS,
    AuditEvent,
    DocumentRenderer,
    JsonDict,
    occurred_ms,
    redact,
    retryable_statuses,
    rfc3339_ms,
)

MAX_REASON = 500
# An item's statuses worth sending it again for: the shared table, less 408 (a timeout of the
# request's transfer, which a single item does not have), plus every 5xx (a shard's trouble:
# 503 unavailable_shards_exception, 500 from a node that left, ...). 409 is not one: on `create`
# it means the document is already stored, i.e. delivered (`Verdict.ALREADY_PRESENT`).
ITEM_RETRY_STATUSES = retryable_statuses(add=SERVER_ERRORS, remove={408})


@dataclass(frozen=True, slots=True)
class Entry:
    """One event ready to send: its action line and document line, joined by a newline."""

    event: AuditEvent
    lines: bytes


def document(event: AuditEvent, render: DocumentRenderer) -> JsonDict:
    """The rendered document; `@timestamp` added if it is missing: RFC 3339, when the event
    happened (`occurred_ms`: `effective_at` for an audit-log event, a compliance record's own
    time, not its log file's end time)."""
    doc = render(event)
    if "@timestamp" in doc:
        return doc
    stamp = rfc3339_ms(occurred_ms(event))
    return {"@timestamp": stamp, **doc}  # a new dict: `raw` must never be mutated


def encode_entry(event: AuditEvent, render: DocumentRenderer, index: str) -> Entry:
    """Both lines of one event; `orjson.JSONEncodeError` (or the renderer's error) if it cannot."""
    action = orjson.dumps({"create": {"_index": index, "_id": event.id}})
    return Entry(event, action + b"\n" + orjson.dumps(document(event, render)))


def bulk_body(entries: Sequence[Entry]) -> bytes:
    """The request body; Elasticsearch requires the final newline."""
    return b"\n".join(entry.lines for entry in entries) + b"\n"


class Verdict(enum.Enum):
    CREATED = "created"
    ALREADY_PRESENT = "already_present"  # 409 on create: an earlier run delivered it
    RETRY = "retry"  # 429 / 5xx for this item only (`ITEM_RETRY_STATUSES`)
    REJECT = "reject"  # this document will never be accepted: dead letter
    FATAL = "fatal"  # nothing will be accepted until the operator acts


@dataclass(frozen=True, slots=True)
class ItemResult:
    verdict: Verdict
    status: int
    error_type: str = ""
    reason: str = ""

    @property
    def summary(self) -> str:
        """`HTTP 400 mapper_parsing_exception: failed to parse ...`, secret-free and bounded."""
        text = f"HTTP {self.status} {self.error_type}: {self.reason}".rstrip(": ")
        return redact(text)[:MAX_REASON]


def _error_of(error: Any) -> tuple[str, str]:
    if not isinstance(error, dict):
        return ("", str(error) if error is not None else "")
    reason = str(error.get("reason") or "")
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        reason = f"{reason} (caused by {caused.get('type', '?')}: {caused['reason']})"
    return (str(error.get("type") or ""), reason)


def _pipeline_missing(error_type: str, reason: str) -> bool:
    return error_type == "illegal_argument_exception" and reason.startswith("pipeline with id [")


def classify(status: int, error: Any) -> ItemResult:
    """What one item's status (and error object) means for delivery."""
    error_type, reason = _error_of(error)
    if status in (200, 201):
        verdict = Verdict.CREATED
    elif status == 409:
        verdict = Verdict.ALREADY_PRESENT
    elif status in ITEM_RETRY_STATUSES:
        verdict = Verdict.RETRY
    elif status in (401, 403, 404) or _pipeline_missing(error_type, reason):
        verdict = Verdict.FATAL
    else:
        verdict = Verdict.REJECT
    return ItemResult(verdict, status, error_type, reason)


def _item(raw: Any) -> ItemResult | None:
    if not isinstance(raw, dict) or len(raw) != 1:
        return None
    (body,) = raw.values()
    if not isinstance(body, dict):
        return None
    status = body.get("status")
    if isinstance(status, bool) or not isinstance(status, int):
        return None
    return classify(status, body.get("error"))


def parse_items(content: bytes, expected: int) -> list[ItemResult] | None:
    """Per-item results of a 200 answer, in request order; None if the body is not a bulk answer."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict):
        return None
    items = answer.get("items")
    if not isinstance(items, list) or len(items) != expected:
        return None
    results = [_item(raw) for raw in items]
    if any(result is None for result in results):
        return None
    return [result for result in results if result is not None]


def request_error(content: bytes) -> tuple[str, str] | None:
    """(type, reason) of a whole-request error in Elasticsearch's shape; None for anything else."""
    try:
        answer = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), dict):
        return None
    error_type, reason = _error_of(answer["error"])
    return (error_type, redact(reason)[:MAX_REASON]) if error_type else None


def privilege_message(index: str) -> str:
    return (
        f"the credentials lack the create_doc (or write) privilege on index {index!r}"
        " (and auto_configure, to create the data stream on first write)"
    )


def index_missing_message(index: str) -> str:
    return (
        f"index {index!r} does not exist and cannot be created automatically "
        "(action.auto_create_index is off or no index template matches): create it first"
    )


def fatal_item_message(result: ItemResult, index: str, pipeline: str | None) -> str:
    """What the operator must fix, for an item verdict of FATAL."""
    if result.status == 401:
        meaning = "the API key or password is wrong"
    elif result.status == 403:
        meaning = privilege_message(index)
    elif result.status == 404:
        meaning = index_missing_message(index)
    else:
        meaning = f"ingest pipeline {pipeline!r} does not exist"
    return f"{result.summary}: {meaning}"
