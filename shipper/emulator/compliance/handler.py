"""Stdlib HTTP/1.1 for the two loopback hosts: the API (listing, download redirect, control) and
the storage host serving signed URLs. Faults are applied here, to delivery."""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from shipper.emulator.compliance.faults import ComplianceFault
from shipper.emulator.faults import Canned, Fault, api_error, canned_response
from shipper.emulator.loopback_server import LoopbackServer

if TYPE_CHECKING:
    from shipper.emulator.compliance.server import ComplianceEmulator

_log = logging.getLogger(__name__)
_REASONS = {s.value: s.phrase for s in HTTPStatus}


def replacing_answer(fault: ComplianceFault) -> Canned | None:
    """The response of a fault that replaces the answer (a rate limit, a proxy's 5xx page)."""
    if fault.kind in ("429", "500", "502", "503", "504"):
        return canned_response(Fault(fault.kind, retry_after=fault.retry_after), "")
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries a Content-Length
    disable_nagle_algorithm = True
    server: ComplianceServer

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: signed URLs in a request line are credentials."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        when = self.server.emulator.api_time() if timestamp is None else timestamp
        return formatdate(when, usegmt=True)

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""  # always drain: keep-alive framing
        path, _, query = self.path.partition("?")
        if self.server.storage:
            self.server.emulator._serve_storage(self, path, query)
        elif path.startswith("/_emulator/"):
            self._control(path, body)
        else:
            self.server.emulator._serve_api(self, path, query)

    do_POST = do_PUT = do_DELETE = do_GET

    def _control(self, path: str, body: bytes) -> None:
        emulator = self.server.emulator
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            self.send(Canned(403, api_error("Control endpoints answer loopback clients only.")))
            return
        try:
            self.send(emulator._control(self.command, path, body))
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            self.send(Canned(400, api_error(f"{type(exc).__name__}: {exc}")))

    # delivery

    def head(self, canned: Canned, length: int) -> bytes:
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

    def send(self, canned: Canned, *, truncated: bool = False) -> None:
        """One write of head and body; `truncated` sends half the body, then hangs up."""
        body = canned.body[: len(canned.body) // 2] if truncated else canned.body
        self.wfile.write(self.head(canned, len(canned.body)) + body)
        if truncated:
            self.close_connection = True

    def stream(
        self,
        canned: Canned,
        length: int,
        chunks: Iterable[bytes],
        *,
        stop_at: int,
        completing: Callable[[], None],
    ) -> None:
        """Head, then the chunks up to `stop_at` bytes (a truncation when below `length`).
        `completing` runs just before the write that completes the whole body: a client that
        has read it all then always finds it counted (it may count a body whose last write
        then fails)."""
        self.wfile.write(self.head(canned, length))
        sent = 0
        for chunk in chunks:
            part = chunk[: stop_at - sent]
            if sent + len(part) == length:
                completing()
            self.wfile.write(part)
            sent += len(part)
            if sent >= stop_at:
                break
        if sent < length:
            self.close_connection = True

    def hang_up(self, *, reset: bool) -> None:
        if reset:
            self.server.reset_on_close(self.connection)
        self.close_connection = True

    def hold(self, seconds: float) -> bool:
        """Wait (a `timeout` fault); False when the emulator stopped meanwhile (then hang up)."""
        if self.server.emulator._stopping.wait(seconds):
            self.close_connection = True
            return False
        return True


class ComplianceServer(LoopbackServer):
    """One of the compliance emulator's two servers: the API, or the storage host (`storage`)."""

    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], emulator: ComplianceEmulator, *, storage: bool
    ) -> None:
        self.emulator = emulator
        self.storage = storage
        super().__init__(address, Handler)
