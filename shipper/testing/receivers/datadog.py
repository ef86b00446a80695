"""A fake Datadog Logs intake that answers as Datadog's "Send logs" page (API v2) documents.

- `POST /api/v2/logs`: `DD-API-KEY` missing -> 401, not one of `keys` -> 403. The body is
  decoded per `Content-Encoding` (gzip, deflate); the limits are measured on the decoded
  (uncompressed) bytes, as documented: over `max_payload_bytes` (5,000,000) -> 413. Not JSON, not
  an object or an array of objects -> 400; an array of more than `max_items` (1,000) -> 400 (the
  page states the limit, not the answer: 400 is this fake's choice). Accepted -> 202 `{}`.
- A log (one item, as JSON) over `max_log_bytes` (1,000,000) is accepted but its `message` is
  cut, as Datadog truncates it: it lands in `truncated`, and its id is lost to `ids()`.
- Event time: an item whose `timestamp` (ms) is older than 18 hours by `clock` is accepted and
  recorded in `too_old` (what the real intake does with it is not documented: it does not keep
  that time). Tests assert nobody sends one.
- A request carrying an event whose id is in `reject_ids` -> 400 for the whole request (Datadog
  does not say which item it refused).
- `throttle(n, retry_after)`: the next n log requests get 429 (with `Retry-After` when given);
  `fail(n, status)`: the next n get that status (500, 503, 408, ...). Nothing of them is kept.
- `GET /api/v1/validate`: 200 `{"valid": true}` for a key in `keys`, else 403
  `{"errors": ["Forbidden"]}`. `GET /api/v2/logs` (no payload) -> 405.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from shipper.testing.receivers.base import Receiver, Recorded, Reply

LOGS_PATH = "/api/v2/logs"
VALIDATE_PATH = "/api/v1/validate"
MAX_EVENT_AGE = 18 * 3600


def _errors(status: int, *messages: str) -> Reply:
    return Reply.json(status, {"errors": list(messages)})


class FakeDatadog:
    def __init__(
        self,
        keys: set[str] | None = None,
        *,
        max_items: int = 1000,
        max_payload_bytes: int = 5_000_000,
        max_log_bytes: int = 1_000_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.keys = keys if keys is not None else {"dd-good-api-key-0123456789"}
        self.max_items = max_items
        self.max_payload_bytes = max_payload_bytes
        self.max_log_bytes = max_log_bytes
        self.clock = clock
        self.reject_ids: set[str] = set()
        self.logs: list[dict[str, Any]] = []  # accepted items, in arrival order
        self.truncated: list[dict[str, Any]] = []
        self.too_old: list[dict[str, Any]] = []
        self.payload_sizes: list[int] = []  # decoded bytes of each accepted request
        self._refusals: list[Reply] = []
        self._lock = threading.Lock()
        self.receiver = Receiver(self.handle)

    # -- scripting and inspection ----------------------------------------------------------
    def throttle(self, times: int, retry_after: int | None = None) -> None:
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        reply = Reply.json(429, {"errors": ["Too many requests"]}, headers)
        with self._lock:
            self._refusals.extend([reply] * times)

    def fail(self, times: int, status: int = 503) -> None:
        with self._lock:
            self._refusals.extend([_errors(status, "Service unavailable")] * times)

    def ids(self) -> list[str]:
        """Event ids of the accepted logs, read from their JSON `message` (truncated ones lost)."""
        with self._lock:
            return [i for i in (_message_id(log) for log in self.logs) if i is not None]

    # -- protocol --------------------------------------------------------------------------
    def handle(self, request: Recorded) -> Reply:
        if request.path == VALIDATE_PATH and request.method == "GET":
            if request.headers.get("dd-api-key") in self.keys:
                return Reply.json(200, {"valid": True})
            return _errors(403, "Forbidden")
        if request.path != LOGS_PATH:
            return _errors(404, "Not found")
        if request.method != "POST":
            return _errors(405, "Method not allowed")
        key = request.headers.get("dd-api-key")
        if not key:
            return _errors(401, "Unauthorized")
        if key not in self.keys:
            return _errors(403, "Forbidden")
        with self._lock:
            if self._refusals:
                return self._refusals.pop(0)
            return self._logs(request)

    def _logs(self, request: Recorded) -> Reply:
        body = _decoded(request)
        if body is None:
            return _errors(400, "Malformed compressed payload")
        if len(body) > self.max_payload_bytes:
            return _errors(413, "Payload too large")
        try:
            parsed = json.loads(body)
        except ValueError:
            return _errors(400, "Malformed JSON")
        items = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(entry, dict) for entry in items):
            return _errors(400, "Each log must be an object")
        if len(items) > self.max_items:
            return _errors(400, f"Too many logs in one array (max {self.max_items})")
        if any(_message_id(entry) in self.reject_ids for entry in items):
            return _errors(400, "Invalid log")
        now = time.time() if self.clock is None else self.clock()
        oldest_ms = (now - MAX_EVENT_AGE) * 1000
        for entry in items:
            kept = entry
            if len(json.dumps(entry, ensure_ascii=False).encode("utf-8")) > self.max_log_bytes:
                cut = str(entry.get("message", ""))[: self.max_log_bytes]
                kept = {**entry, "message": cut}
                self.truncated.append(kept)
            stamp = kept.get("timestamp")
            if isinstance(stamp, int | float) and stamp < oldest_ms:
                self.too_old.append(kept)
            self.logs.append(kept)
        self.payload_sizes.append(len(body))
        return Reply.json(202, {})


def _decoded(request: Recorded) -> bytes | None:
    """The uncompressed body; None when it does not match its Content-Encoding."""
    encoding = request.headers.get("content-encoding", "").lower()
    try:
        if encoding == "gzip":
            return zlib.decompress(request.raw_body, wbits=31)
        if encoding == "deflate":
            return zlib.decompress(request.raw_body)
    except zlib.error:
        return None
    return request.raw_body


def _message_id(log: dict[str, Any]) -> str | None:
    try:
        message = json.loads(log.get("message", ""))
    except (TypeError, ValueError):
        return None
    value = message.get("id") if isinstance(message, dict) else None
    return value if isinstance(value, str) else None
