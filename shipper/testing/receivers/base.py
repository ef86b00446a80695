"""A small real HTTP receiver for sink tests: loopback, keep-alive, scripted answers, recorded requests.

`Receiver` runs a stdlib `ThreadingHTTPServer` (HTTP/1.1, keep-alive) on 127.0.0.1 and a free
port. Each request is recorded, then answered by the first queued `Reply` whose `path` matches
(see `script`), else by the `respond` callable given at construction (default: 200 empty).
`stop()` closes the listener *and* every open keep-alive connection, so clients really see the
receiver go away; `start()` again binds the same port, and `restart()` does both. Recorded
requests survive restarts.

    with Receiver(my_handler) as rx:
        rx.script(Reply(503, b"busy", {"retry-after": "1"}))
        ... point a sink at rx.url ...
        rx.wait_for(lambda: len(rx.requests) >= 2)
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    """One request as the receiver saw it. `body` is decoded from gzip when it was compressed."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    raw_body: bytes
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """An answer. `drop=True` closes the connection without answering (a crash mid-request).

    `trickle` > 0 sends the answer a byte every `trickle` seconds and hangs up after
    `trickle_for` seconds (a peer that never quite answers)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False
    trickle: float = 0.0
    trickle_for: float = 30.0

    @classmethod
    def json(cls, status: int, obj: Any, headers: dict[str, str] | None = None) -> Reply:
        merged = {"content-type": "application/json", **(headers or {})}
        return cls(status, json.dumps(obj).encode(), merged)


Responder = Callable[[Recorded], Reply]


def _ok(_: Recorded) -> Reply:
    return Reply()


def _decode(raw: bytes, encoding: str) -> bytes:
    if encoding.lower() == "gzip":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError):
            return raw  # left undecoded; a receiver's handler can refuse it
    return raw


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class Receiver:
    """A loopback HTTP server with a scripted-reply queue and a request log. See the module doc."""

    def __init__(self, respond: Responder = _ok) -> None:
        self.respond = respond
        self.requests: list[Recorded] = []
        self._script: deque[tuple[str | None, Reply | Responder]] = deque()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._server is not None:
            return
        self._server = _Server(("127.0.0.1", self._port), self._handler_class())
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            connections, self._connections = set(self._connections), set()
        for conn in connections:
            _close_quietly(conn)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @contextmanager
    def down(self) -> Iterator[None]:
        """Inside the block nothing listens on the port (connection refused)."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- scripting and inspection ----------------------------------------------------------
    def script(self, *replies: Reply | Responder, path: str | None = None) -> None:
        """Queue replies used (once each, in order) by the next requests whose path starts with `path`."""
        with self._lock:
            self._script.extend((path, reply) for reply in replies)

    def clear_script(self) -> None:
        """Forget every queued reply not used yet."""
        with self._lock:
            self._script.clear()

    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    def requests_to(self, path: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Poll `predicate` until true; `AssertionError` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(0.005)

    # -- request handling ------------------------------------------------------------------
    def _answer(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self._take_scripted(request.path)
        if scripted is None:
            return self.respond(request)
        return scripted(request) if callable(scripted) else scripted

    def _take_scripted(self, path: str) -> Reply | Responder | None:
        for index, (prefix, reply) in enumerate(self._script):
            if prefix is None or path.startswith(prefix):
                del self._script[index]
                return reply
        return None

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in two writes; without this, Nagle + delayed ACK
                # add ~40 ms to every keep-alive request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                receiver._track(self.connection, add=True)

            def finish(self) -> None:
                receiver._track(self.connection, add=False)
                with suppress(OSError):
                    super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorded = Recorded(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers=headers,
                    raw_body=raw,
                    body=_decode(raw, headers.get("content-encoding", "")),
                )
                reply = receiver._answer(recorded)
                if reply.drop:
                    self.close_connection = True
                    _close_quietly(self.connection)
                    return
                if reply.trickle > 0:
                    self.close_connection = True
                    _send_trickled(self.connection, reply)
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                body = b"" if self.command == "HEAD" else reply.body
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_HEAD = do_OPTIONS = do_DELETE = _handle

        return Handler


def _send_trickled(conn: socket.socket, reply: Reply) -> None:
    head = f"HTTP/1.1 {reply.status} Trickled\r\ncontent-length: {len(reply.body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in reply.headers.items())
    data = (head + "\r\n").encode() + reply.body
    deadline = time.monotonic() + reply.trickle_for
    with suppress(OSError):
        for index in range(len(data)):
            if time.monotonic() + reply.trickle > deadline:
                break
            time.sleep(reply.trickle)  # the trickle itself, not synchronisation
            conn.sendall(data[index : index + 1])
    _close_quietly(conn)


def _close_quietly(conn: socket.socket) -> None:
    with suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        conn.close()


def document_id(document: Any) -> str:
    """The event id a received document carries: `id` (an audit-log object, raw or normalized)
    or `event_id` (a compliance record); "" when it carries neither."""
    if isinstance(document, dict):
        for key in ("id", "event_id"):
            if key in document:
                return str(document[key])
    return ""
