"""A fake Splunk HTTP Event Collector that answers as Splunk documents it.

- Tokens: `Authorization: Splunk <token>`; missing -> 401 code 2, other scheme -> 401 code 3,
  unknown -> 403 code 4, disabled -> 403 code 1.
- `/services/collector/event`: concatenated JSON event objects (gzip bodies decoded). Empty body
  -> 400 code 5. Events are taken in order; the first bad one stops the request with 400 and
  `invalid-event-number` (0-based): unparseable JSON or an id in `reject_ids` -> code 6, no
  `event` -> code 12, blank `event` -> code 13. Events before it stay accepted (as in Splunk).
  An index outside `indexes` -> 400 code 7; a body over `max_content_length` -> 413.
- Channels: required when the token has acks enabled (400 code 10); must be a GUID (code 11).
  Ack ids count up from 0 per channel; `/services/collector/ack` answers
  `{"acks": {"0": true, ...}}`, an id turning true after `ack_after_polls` queries and being
  forgotten once reported true. `lose_next_acks(n)` makes the next n requests' data vanish
  (never indexed, never acked), as when an indexer dies; `forget_channels()` is a Splunk restart.
- `busy(n)`: the next n event requests get 503 code 9. `/services/collector/health`: 200 code
  17, or 503 code 18 while `unhealthy`.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from shipper.testing.receivers.base import Receiver, Recorded, Reply, document_id

EVENT_PATHS = ("/services/collector/event", "/services/collector", "/services/collector/event/1.0")
ACK_PATH = "/services/collector/ack"
HEALTH_PATHS = ("/services/collector/health", "/services/collector/health/1.0")


def hec(status: int, code: int, text: str, **extra: Any) -> Reply:
    return Reply.json(status, {"text": text, "code": code, **extra})


@dataclass
class Token:
    ack: bool = False
    disabled: bool = False


@dataclass
class _Channel:
    next_id: int = 0
    pending: dict[int, int] = field(default_factory=dict)  # ack id -> polls so far
    lost: set[int] = field(default_factory=set)


class FakeHec:
    def __init__(
        self,
        tokens: dict[str, Token] | None = None,
        *,
        indexes: set[str] | None = None,
        max_content_length: int = 1_000_000,
        ack_after_polls: int = 1,
    ) -> None:
        self.tokens = tokens if tokens is not None else {"good-token-0123": Token()}
        self.indexes = indexes
        self.max_content_length = max_content_length
        self.ack_after_polls = ack_after_polls
        self.reject_ids: set[str] = set()
        self.unhealthy = False
        self.events: list[dict[str, Any]] = []  # accepted (and not lost) event objects
        self.lost: list[dict[str, Any]] = []
        self._busy = 0
        self._lose = 0
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.Lock()
        self.receiver = Receiver(self.handle)

    # -- scripting -------------------------------------------------------------------------
    def busy(self, times: int) -> None:
        with self._lock:
            self._busy += times

    def lose_next_acks(self, times: int) -> None:
        with self._lock:
            self._lose += times

    def forget_channels(self) -> None:
        with self._lock:
            self._channels.clear()

    def event_ids(self) -> list[str]:
        with self._lock:
            return [document_id(e.get("event")) for e in self.events]

    # -- protocol --------------------------------------------------------------------------
    def handle(self, request: Recorded) -> Reply:
        if request.path in HEALTH_PATHS:
            if self.unhealthy:
                return hec(503, 18, "HEC is unhealthy, queues are full")
            return hec(200, 17, "HEC is healthy")
        if request.path not in (*EVENT_PATHS, ACK_PATH):
            return Reply(404, b"<html>Not Found</html>", {"content-type": "text/html"})
        token, refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        channel, refusal = self._channel(request, token)
        if refusal is not None:
            return refusal
        with self._lock:
            if request.path == ACK_PATH:
                return self._ack(request, token, channel)
            return self._events(request, token, channel)

    def _authenticate(self, request: Recorded) -> tuple[Token, Reply | None]:
        header = request.headers.get("authorization")
        if not header:
            return Token(), hec(401, 2, "Token is required")
        scheme, _, value = header.partition(" ")
        if scheme != "Splunk" or not value:
            return Token(), hec(401, 3, "Invalid authorization")
        token = self.tokens.get(value)
        if token is None:
            return Token(), hec(403, 4, "Invalid token")
        if token.disabled:
            return token, hec(403, 1, "Token disabled")
        return token, None

    def _channel(self, request: Recorded, token: Token) -> tuple[str | None, Reply | None]:
        channel = request.headers.get("x-splunk-request-channel") or next(
            iter(request.query.get("channel", [])), None
        )
        if channel is None:
            needed = token.ack or request.path == ACK_PATH
            return None, hec(400, 10, "Data channel is missing") if needed else None
        try:
            uuid.UUID(channel)
        except ValueError:
            return None, hec(400, 11, "Invalid data channel")
        return channel, None

    def _events(self, request: Recorded, token: Token, channel: str | None) -> Reply:
        if self._busy:
            self._busy -= 1
            return hec(503, 9, "Server is busy")
        if len(request.body) > self.max_content_length:
            return Reply(413, b"Content-Length of request exceeds max_content_length")
        text = request.body.decode("utf-8", errors="replace")
        if not text.strip():
            return hec(400, 5, "No data")
        accepted, error = self._parse(text)
        target = self.events
        if token.ack and self._lose and not error:
            self._lose -= 1
            target = self.lost
        target.extend(accepted)
        if error is not None:
            return error
        if not token.ack:
            return hec(200, 0, "Success")
        assert channel is not None
        state = self._channels.setdefault(channel, _Channel())
        ack_id, state.next_id = state.next_id, state.next_id + 1
        state.pending[ack_id] = 0
        if target is self.lost:
            state.lost.add(ack_id)
        return hec(200, 0, "Success", ackId=ack_id)

    def _parse(self, text: str) -> tuple[list[dict[str, Any]], Reply | None]:
        decoder = json.JSONDecoder()
        accepted: list[dict[str, Any]] = []
        position, number = 0, 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text):
                return accepted, None
            try:
                obj, position = decoder.raw_decode(text, position)
            except json.JSONDecodeError:
                return accepted, hec(
                    400, 6, "Invalid data format", **{"invalid-event-number": number}
                )
            if (problem := self._check(obj, number)) is not None:
                return accepted, problem
            accepted.append(obj)
            number += 1

    def _check(self, obj: Any, number: int) -> Reply | None:
        where = {"invalid-event-number": number}
        if not isinstance(obj, dict):
            return hec(400, 6, "Invalid data format", **where)
        if "event" not in obj:
            return hec(400, 12, "Event field is required", **where)
        if obj["event"] in ("", None, {}):
            return hec(400, 13, "Event field cannot be blank", **where)
        if self.indexes is not None and obj.get("index", "main") not in self.indexes:
            return hec(400, 7, "Incorrect index", **where)
        if document_id(obj["event"]) in self.reject_ids:
            return hec(400, 6, "Invalid data format", **where)
        return None

    def _ack(self, request: Recorded, token: Token, channel: str | None) -> Reply:
        if not token.ack:
            return hec(400, 14, "ACK is disabled")
        try:
            wanted = json.loads(request.body)["acks"]
        except (ValueError, KeyError, TypeError):
            return hec(400, 6, "Invalid data format")
        state = self._channels.get(channel or "", _Channel())
        answer: dict[str, bool] = {}
        for ack_id in wanted:
            done = False
            if ack_id in state.pending and ack_id not in state.lost:
                state.pending[ack_id] += 1
                done = state.pending[ack_id] >= self.ack_after_polls
                if done:
                    del state.pending[ack_id]  # Splunk reports an id true once, then forgets it
            answer[str(ack_id)] = done
        return Reply.json(200, {"acks": answer})
