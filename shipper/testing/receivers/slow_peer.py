"""A hung HTTP peer on loopback: it reads each request, then answers one byte every `interval`.

Raw sockets, so the answer is as slow as asked from its first byte (`trickle="headers"`) or
after whole headers (`trickle="body"`). Each exchange's length is recorded, from the request
read to the client giving up (closing or resetting the connection), so a test can check that
every request ended by its deadline.

    with SlowPeer(interval=1.0) as peer:
        ... point a client at peer.url ...
        assert max(peer.exchanges) < deadline + 1
"""

from __future__ import annotations

import select
import socket
import threading
import time
from contextlib import suppress
from types import TracebackType
from typing import Literal

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"


class SlowPeer:
    def __init__(
        self, *, interval: float = 1.0, trickle: Literal["headers", "body"] = "headers"
    ) -> None:
        self.interval = interval
        self.trickle = trickle
        self.exchanges: list[float] = []  # seconds from request read to client gone
        self.requests = 0
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> SlowPeer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._listener.close()
        for conn in list(self._conns):
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_request(self, conn: socket.socket) -> bool:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        return True

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                if not self._read_request(conn):
                    return
            except OSError:
                return
            self.requests += 1
            began = time.monotonic()
            answer = HEAD + b"[" * 1_000_000
            if self.trickle == "body":
                conn.sendall(HEAD)
                answer = answer[len(HEAD) :]
            try:
                for index in range(len(answer)):
                    conn.sendall(answer[index : index + 1])
                    # Waiting for the next byte's turn, watch for the client hanging up.
                    readable, _, _ = select.select([conn], [], [], self.interval)
                    if self._stop.is_set() or (readable and not conn.recv(1)):
                        break
            except OSError:
                pass  # reset by the client
            self.exchanges.append(time.monotonic() - began)
