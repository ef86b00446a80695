"""The `logs:import` request and Google's answers, as pure functions.

Each event becomes one `Log`: `data` = the event's JSON bytes, base64 (so no content can break
the request's framing), `logEntryTime` = when the event happened (`occurred_ms`: `effective_at`
for an audit-log event, a compliance record's own time), `collectionTime` = when this send
began. Google requires `collectionTime` to be after `logEntryTime`; an event stamped in the
future (the API's clock ahead of ours) gets a collection time just after its own time.
Field names are camelCase, as in the API reference.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

import httpx
import orjson

from shipper.sink_api import AuditEvent, describe, occurred_ms, redact

ENVELOPE_HEAD = b'{"inlineSource":{"logs":['
ENVELOPE_TAIL = b"]}}"
# What the request adds to its entries: the envelope, less the separator `batches` counts for
# the last entry (it counts one per entry; a JSON array has one fewer comma).
ENVELOPE_BYTES = len(ENVELOPE_HEAD) + len(ENVELOPE_TAIL) - 1
MAX_REASON = 500
AFTER = dt.timedelta(milliseconds=1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def rfc3339(moment: dt.datetime) -> str:
    """UTC with 0 or 6 fractional digits and `Z`, two of the forms Google accepts."""
    text = moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond:06d}Z" if moment.microsecond else f"{text}Z"


def entry_times(event: AuditEvent, collected: dt.datetime) -> tuple[str, str]:
    """(logEntryTime, collectionTime), the second strictly after the first; logEntryTime is when
    the event happened (`occurred_ms`: a compliance record's own time, to the millisecond)."""
    entry = EPOCH + dt.timedelta(milliseconds=occurred_ms(event))
    return rfc3339(entry), rfc3339(max(collected, entry + AFTER))


def encode_log(
    event: AuditEvent,
    data: bytes,
    collected: dt.datetime,
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
) -> bytes:
    """One `Log` object as JSON bytes."""
    entry_time, collection_time = entry_times(event, collected)
    log: dict[str, Any] = {
        "data": base64.b64encode(data).decode("ascii"),
        "logEntryTime": entry_time,
        "collectionTime": collection_time,
    }
    if namespace:
        log["environmentNamespace"] = namespace
    if labels:
        log["labels"] = {key: {"value": value} for key, value in labels.items()}
    return orjson.dumps(log)


def request_body(logs: Sequence[bytes]) -> bytes:
    return ENVELOPE_HEAD + b",".join(logs) + ENVELOPE_TAIL


def google_error(response: httpx.Response) -> tuple[str, str]:
    """(status, message) of Google's error body `{"error": {"status", "message"}}`, or ("", "")."""
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ("", "")
    error = answer.get("error") if isinstance(answer, dict) else None
    if not isinstance(error, dict):
        return ("", "")
    return (str(error.get("status") or ""), redact(str(error.get("message") or ""))[:MAX_REASON])


def summary(response: httpx.Response) -> str:
    """`HTTP 400 INVALID_ARGUMENT: <Google's message>`, or the generic description."""
    status, message = google_error(response)
    if not status and not message:
        return describe(response)
    return f"HTTP {response.status_code} {status}: {message}".rstrip(": ")


def operator_meaning(status: int, google_status: str, where: str, log_type: str) -> str:
    """What an answer that stops the sink means, in the operator's terms."""
    if status == 401:
        return (
            "Google did not accept the access token (the service account key was revoked or "
            "its account deleted); create a new key"
        )
    if status == 403 and google_status in ("ACCESS_TOKEN_SCOPE_INSUFFICIENT",):
        return "the token lacks the cloud-platform scope"
    if status == 403:
        return (
            f"the service account may not import logs into {where}: grant it a role with "
            "chronicle.logs.import on the project bound to the instance, and check that the "
            "Chronicle API is enabled in that project"
        )
    if status == 404:
        return (
            f"{where} or log type {log_type!r} does not exist: check project, region (and url), "
            "instance (the customer id) and the log type (a custom log type must be created "
            "in SecOps first)"
        )
    return f"unexpected answer from {where}"
