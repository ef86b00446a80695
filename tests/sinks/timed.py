"""A compliance record whose own time is not its log file's end time, for the sinks' time tests.

A `ComplianceRecord`'s `effective_at` is the end time of the log file it came from; the record's
own `timestamp` is earlier, and carries milliseconds. A sink that stamps `effective_at` instead of
the record's time (`occurred_ms`) shows it in every test built on `record`.
"""

from __future__ import annotations

import orjson

from shipper.model.event import ComplianceRecord, rfc3339_ms

BEFORE_FILE_END_MS = 754_750  # the record happened 12 min 34.75 s before its file ended


def own_time_ms(file_end: int) -> int:
    """The default own time of a record from a file that ended at `file_end`, in epoch ms."""
    return file_end * 1000 - BEFORE_FILE_END_MS


def record(
    file_end: int,
    *,
    own_ms: int | None = None,
    record_type: str = "AUTH_LOG",
    n: int = 0,
) -> ComplianceRecord:
    """A record of `record_type` from a log file that ended at `file_end` (epoch seconds), whose
    own `timestamp` is `own_ms` (default: `BEFORE_FILE_END_MS` before the file's end), held as
    JSON bytes as the source holds it."""
    own = own_time_ms(file_end) if own_ms is None else own_ms
    event_id = f"evt-timed-{n:04d}"
    raw = {
        "event_id": event_id,
        "type": record_type,
        "timestamp": rfc3339_ms(own),
        "principal": {"id": "user-1", "type": "USER"},
        "actor": {"type": "ACCOUNT_USER", "user_id": "user-1", "user_email": "a@example.com"},
        "action_data": {"action": "login_failed"},
    }
    return ComplianceRecord(
        event_id, record_type, file_end, organization="acme", json=orjson.dumps(raw)
    )
