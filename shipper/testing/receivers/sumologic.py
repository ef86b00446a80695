"""A fake Sumo Logic HTTP Logs source that answers as Sumo Logic's documentation says.

- `POST /receiver/v1/http/<code>`: another code -> 401; another path -> 404; another method
  -> 405 (this fake does not take data in a GET's query string, as the real source can).
- The body is decoded per `Content-Encoding` (gzip, deflate; Sumo also takes zstd, which this
  fake answers 415); an undecodable body or one that is not UTF-8 -> 400. Each line (split on `\\n`, a trailing `\\r` dropped, empty lines ignored) is one
  message, recorded with the request's `X-Sumo-Category`/`-Name`/`-Host`/`-Fields` metadata.
- Sizes are measured on the decoded bytes, as documented: Sumo has no hard limit per request
  and recommends 100 KB-1 MB, so a bigger request is accepted and listed in `oversized`; a
  message over 65,536 bytes is sliced into 64 KB messages (as Sumo does), listed in `sliced`.
- `throttle(n, retry_after)`: the next n requests get 429 and their data is dropped (the
  client must re-send). `time_out(n)`: 408 after ingesting the first half of the lines (the
  documented "part of the data may already be ingested"). `fail(n, status)`: 503/504, nothing
  kept. `budget_exhausted = True`: 200 and the data dropped (counted in `dropped`): the case no
  client can detect.
"""

from __future__ import annotations

import json
import threading
import zlib
from dataclasses import dataclass, field
from typing import Any

from shipper.testing.receivers.base import Receiver, Recorded, Reply

PATH_PREFIX = "/receiver/v1/http/"
MAX_MESSAGE_BYTES = 65_536
RECOMMENDED_MAX_REQUEST = 1_000_000


@dataclass(frozen=True)
class Message:
    text: str
    category: str | None = None
    name: str | None = None
    host: str | None = None
    fields: dict[str, str] = field(default_factory=dict)


class FakeSumo:
    def __init__(self, code: str = "ZaVnC4dhaV0123456789SECRETcode==") -> None:
        self.code = code
        self.messages: list[Message] = []
        self.request_sizes: list[int] = []  # decoded bytes of each request that was ingested
        self.oversized: list[int] = []
        self.sliced: list[int] = []  # sizes of messages Sumo cut into pieces
        self.dropped = 0  # lines dropped with a 200 (ingest budget exhausted)
        self.budget_exhausted = False
        self._faults: list[Reply] = []
        self._lock = threading.Lock()
        self.receiver = Receiver(self.handle)

    @property
    def path(self) -> str:
        return PATH_PREFIX + self.code

    @property
    def url(self) -> str:
        return self.receiver.url + self.path

    # -- scripting and inspection ----------------------------------------------------------
    def throttle(self, times: int, retry_after: int | None = None) -> None:
        headers = {} if retry_after is None else {"retry-after": str(retry_after)}
        with self._lock:
            self._faults.extend([Reply(429, b"Too Many Requests", headers)] * times)

    def time_out(self, times: int) -> None:
        with self._lock:
            self._faults.extend([Reply(408, b"Request Timeout")] * times)

    def fail(self, times: int, status: int = 503) -> None:
        with self._lock:
            self._faults.extend([Reply(status, b"Service Unavailable")] * times)

    def ids(self) -> list[str]:
        """Event ids of the messages, read from their JSON (sliced or non-JSON lines skipped)."""
        with self._lock:
            texts = [m.text for m in self.messages]
        found = []
        for text in texts:
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("id"), str):
                found.append(doc["id"])
        return found

    # -- protocol --------------------------------------------------------------------------
    def handle(self, request: Recorded) -> Reply:
        if not request.path.startswith(PATH_PREFIX):
            return Reply(404, b"Not Found")
        if request.path != self.path:
            return Reply(401, b"Unauthorized: HTTP source token invalid")
        if request.method != "POST":
            return Reply(405, b"Method Not Allowed")
        body, refusal = _decoded(request)
        if refusal is not None:
            return refusal
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return Reply(400, b"Bad Request: UTF-8 only")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        lines = [line for line in lines if line]
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
            if fault is not None and fault.status == 408:
                self._ingest(request, lines[: len(lines) // 2])
            if fault is not None:
                return fault
            if self.budget_exhausted:
                self.dropped += len(lines)
                return Reply(200)
            self.request_sizes.append(len(body))
            if len(body) > RECOMMENDED_MAX_REQUEST:
                self.oversized.append(len(body))
            self._ingest(request, lines)
        return Reply(200)

    def _ingest(self, request: Recorded, lines: list[str]) -> None:
        meta: dict[str, Any] = {
            "category": request.headers.get("x-sumo-category"),
            "name": request.headers.get("x-sumo-name"),
            "host": request.headers.get("x-sumo-host"),
            "fields": _fields(request.headers.get("x-sumo-fields", "")),
        }
        for line in lines:
            data = line.encode("utf-8")
            if len(data) <= MAX_MESSAGE_BYTES:
                self.messages.append(Message(line, **meta))
                continue
            self.sliced.append(len(data))
            for start in range(0, len(data), MAX_MESSAGE_BYTES):
                piece = data[start : start + MAX_MESSAGE_BYTES].decode("utf-8", errors="replace")
                self.messages.append(Message(piece, **meta))


def _decoded(request: Recorded) -> tuple[bytes, Reply | None]:
    encoding = request.headers.get("content-encoding", "").lower()
    try:
        if encoding == "gzip":
            return zlib.decompress(request.raw_body, wbits=31), None
        if encoding == "deflate":
            return zlib.decompress(request.raw_body), None
    except zlib.error:
        return b"", Reply(400, b"Bad Request: body does not match Content-Encoding")
    if encoding == "zstd":
        return b"", Reply(415, b"this fake decodes gzip and deflate only")
    return request.raw_body, None


def _fields(header: str) -> dict[str, str]:
    pairs = (part.partition("=") for part in header.split(",") if part)
    return {name.strip(): value.strip() for name, _, value in pairs}
