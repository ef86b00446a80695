"""Stdlib HTTP/1.1 with keep-alive: the request handler and the threading servers.

Faults are applied here, to delivery; the answer itself comes from `Emulator._answer`.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from shipper.emulator.faults import (
    DELIVERY_FAULTS,
    Canned,
    Fault,
    api_error,
    bad_request,
    canned_response,
)
from shipper.emulator.loopback_server import LoopbackServer

if TYPE_CHECKING:
    from shipper.emulator.server import Emulator

LIST_PATH = "/v1/organization/audit_logs"
_log = logging.getLogger(__name__)

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def bearer(authorization: str | None) -> str | None:
    scheme, _, key = (authorization or "").strip().partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries a Content-Length
    disable_nagle_algorithm = True  # small answers must not wait for delayed ACKs
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line per request would drown benchmark output."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Only stdlib error paths (malformed requests) get here; give them a request id too."""
        super().send_response(code, message)
        self.send_header("x-request-id", f"req_{secrets.token_hex(16)}")

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Every answer's `Date`, stdlib error paths included, from the emulator's clock."""
        when = self.server.emulator.api_time() if timestamp is None else timestamp
        return formatdate(when, usegmt=True)

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""  # always drain: keep-alive framing
        path, _, query = self.path.partition("?")
        emulator = self.server.emulator
        listing = path == LIST_PATH and self.command == "GET"
        emulator._stats.count(listing=listing)
        if listing:
            with emulator._stats.answering_list(emulator.max_concurrent_lists) as admitted:
                if admitted:
                    self._list(emulator, query)
                else:  # a rate limiter in front of the API
                    self.send(canned_response(Fault("429"), ""))
        elif path.startswith("/_emulator/"):
            self._control(emulator, path, body)
        else:
            self.send(Canned(404, api_error(f"Invalid URL ({self.command} {path})")))

    do_POST = do_PUT = do_DELETE = do_GET

    def send(self, canned: Canned, body: bytes | None = None) -> None:
        """Write status line, headers and body in one write (no Nagle/delayed-ACK stalls)."""
        body = canned.body if body is None else body
        self.wfile.write(self._head(canned, len(body)) + body)

    def _head(self, canned: Canned, length: int) -> bytes:
        head = [
            f"HTTP/1.1 {canned.status} {_REASONS.get(canned.status, '')}",
            f"Content-Type: {canned.content_type}",
            f"Content-Length: {length}",
            f"x-request-id: req_{secrets.token_hex(16)}",
            f"Date: {self.date_time_string()}",
            *(f"{name}: {value}" for name, value in canned.headers),
        ]
        if self.close_connection:
            head.append("Connection: close")
        self.server.emulator._stats.tally("responses_by_status", canned.status)
        return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n"

    def _list(self, emulator: Emulator, query: str) -> None:
        fault = emulator._faults.next()
        kind = fault.kind if fault is not None else None
        if fault is not None:
            emulator._stats.tally("faults_served", fault.kind)
        if kind == "reset":
            self.server.reset_on_close(self.connection)
            self.close_connection = True
            return
        delay = emulator.page_delay + (fault.delay if fault and kind == "timeout" else 0.0)
        if delay > 0 and emulator._stopping.wait(delay):
            self.close_connection = True  # stopped while waiting: hang up
            return
        authorization = self.headers.get("Authorization")
        if fault is not None and fault.kind not in DELIVERY_FAULTS:
            self.send(canned_response(fault, bearer(authorization) or ""))
            return
        answer = emulator._answer(query, authorization)
        if kind == "truncated":
            self.send(answer, answer.body[: len(answer.body) // 2])
        elif kind == "concatenated":
            self.send(answer, answer.body + answer.body)
        else:
            self.send(answer)

    def _control(self, emulator: Emulator, path: str, body: bytes) -> None:
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            self.send(Canned(403, api_error("Control endpoints answer loopback clients only.")))
        elif (self.command, path) == ("GET", "/_emulator/events"):
            self._stream(emulator._store.blobs())
        else:
            try:
                self.send(emulator._control(self.command, path, body))
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                self.send(bad_request(f"{type(exc).__name__}: {exc}"))

    def _stream(self, blobs: list[bytes]) -> None:
        """NDJSON without building one huge body: the length is known from the cached bytes."""
        length = sum(len(b) + 1 for b in blobs)
        self.wfile.write(self._head(Canned(200, b"", "application/x-ndjson"), length))
        for start in range(0, len(blobs), 4096):
            self.wfile.write(b"".join(b + b"\n" for b in blobs[start : start + 4096]))


class Server(LoopbackServer):
    """The audit-log API emulator's server."""

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        super().__init__(address, _Handler)


class Server6(Server):
    address_family = socket.AF_INET6
