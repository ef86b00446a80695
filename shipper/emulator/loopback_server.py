"""The HTTP server both emulators run: threads per connection, connections it can drop or reset."""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_log = logging.getLogger("shipper.emulator")


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server that can drop its connections and close one with a reset."""

    daemon_threads = True
    request_queue_size = 512  # benchmarks open many connections at once; 5 would drop SYNs

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._conns: set[socket.socket] = set()
        self._resets: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on DNS: skip that.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def reset_on_close(self, conn: socket.socket) -> None:
        """Make closing this connection send RST instead of FIN (SO_LINGER with zero timeout)."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conns_lock:
            self._resets.add(conn)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            request.close()  # no shutdown(SHUT_WR) first: that would send a FIN
        else:
            super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Wake every handler blocked on a keep-alive read so its thread ends."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer (timeouts, resets, stop()) are routine here.
        if not isinstance(sys.exc_info()[1], OSError):
            _log.exception("emulator request failed (%s)", type(self).__name__)
