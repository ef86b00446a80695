"""A loopback TCP relay for the chaos harness that can hold, trickle, stall, close or reset.

In front of the API emulator it holds one request at a chosen moment (the harness then knows
the run is alive, see `Hold`) or trickles one answer a byte at a time; in front of rsyslog it
accepts a connection and never reads it (a wedged daemon: with a tiny receive window, so what
the shipper sends stays in its own send queue) or closes a connection once a batch went
through. Bytes a stalled or closed connection swallowed are never forwarded, as in real life.
With `small_window`, accepted connections get a tiny receive buffer (and so window): a stalled
one then takes in only a couple of kB, and what the shipper sends after that stays in its own
send queue, where it can tell that it was not delivered.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable

_CHUNK = 65536
_IDLE = 0.05  # a connection quiet this long after data is "between batches"


class Hold:
    """Blocks the first request relayed once `ready()` is true, until `release()` (bounded)."""

    def __init__(self, ready: Callable[[], bool], limit: float = 10.0) -> None:
        self.ready, self.limit = ready, limit
        self.reached = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()

    def gate(self) -> None:
        with self._lock:
            if self.reached.is_set() or not self.ready():
                return
            self.reached.set()
        self._released.wait(self.limit)

    def release(self) -> None:
        self._released.set()


def _quietly(target: Callable[..., None]) -> Callable[..., None]:
    """A relay thread's body: a socket closed under it (stop, reset) just ends the thread."""

    def run(*args: object) -> None:
        with contextlib.suppress(OSError):
            target(*args)

    return run


class _Link:
    """A client connection and its upstream; closing either side closes both."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None) -> None:
        self.client, self.upstream = client, upstream
        self.closed = threading.Event()

    def close(self, *, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:  # RST, not FIN: what the peer sees when a process dies or `ss -K`
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class Proxy:
    """Relays 127.0.0.1:`port` to 127.0.0.1:`upstream()`; see the module docstring."""

    def __init__(self, upstream: Callable[[], int], *, small_window: bool = False) -> None:
        self.upstream, self.small_window = upstream, small_window
        self.port = 0
        self.hold: Hold | None = None
        self.stalled = 0  # connections accepted and never read
        self.closed_by_peer = 0  # connections closed between batches
        self.trickled = 0  # answers trickled
        self._stall_next = self._close_next = self._trickle_next = 0
        self._trickle = (0.0, 0.0)  # seconds per byte, for at most this long
        self._lock = threading.Lock()
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._running = threading.Event()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._listener = self._listen()
        self._running.set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and reset every relayed connection."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            links, self._links = set(self._links), set()
        for link in links:
            link.close(reset=True)

    def _listen(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.small_window:  # before listen(): accepted sockets inherit it, so the window too
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(0.05)
        self.port = sock.getsockname()[1]
        return sock

    # -- faults ----------------------------------------------------------------------------
    def stall_next(self) -> None:
        """The next connection is accepted and never read (until `drop_all`)."""
        with self._lock:
            self._stall_next = 1

    def close_next(self) -> None:
        """The next connection is closed by the peer once a batch went through."""
        with self._lock:
            self._close_next = 1

    def trickle_next(self, per_byte: float, at_most: float) -> None:
        """The next answer is sent a byte per `per_byte` s; after `at_most` s, the peer hangs up."""
        with self._lock:
            self._trickle_next, self._trickle = 1, (per_byte, at_most)

    def disarm(self) -> None:
        with self._lock:
            self._stall_next = self._close_next = self._trickle_next = 0
        self.hold = None

    def live(self) -> int:
        """Relayed connections open now."""
        with self._lock:
            return sum(1 for link in self._links if not link.closed.is_set())

    def drop_stalled(self) -> None:
        """Reset the stalled connections: the bytes they swallowed are gone."""
        with self._lock:
            stalled = {link for link in self._links if link.upstream is None}
            self._links -= stalled
        for link in stalled:
            link.close(reset=True)

    def reset_all(self) -> int:
        """Reset every relayed connection (what `ss -K` does); how many there were."""
        with self._lock:
            links = [link for link in self._links if not link.closed.is_set()]
        for link in links:
            link.close(reset=True)
        return len(links)

    # -- relaying --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while self._running.is_set():
            listener = self._listener
            if listener is None:
                return
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stall = self._take("_stall_next")
            threading.Thread(
                target=_quietly(self._serve), args=(client, stall), daemon=True
            ).start()

    def _keep(self, link: _Link) -> bool:
        """Track `link` so `stop` closes it; one accepted while stopping is closed at once."""
        with self._lock:
            if self._running.is_set():
                self._links.add(link)
                return True
        link.close(reset=True)
        return False

    def _take(self, name: str) -> bool:
        with self._lock:
            if getattr(self, name) <= 0:
                return False
            setattr(self, name, getattr(self, name) - 1)
            return True

    def _serve(self, client: socket.socket, stall: bool) -> None:
        if stall:
            if self._keep(_Link(client, None)):  # kept open, never read
                with self._lock:
                    self.stalled += 1
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream()), timeout=5)
        except OSError:
            _Link(client, None).close(reset=True)  # nothing behind us: as if refused
            return
        link = _Link(client, upstream)
        if not self._keep(link):
            return
        try:  # a relay ended by an error (a reset mid-read) closes both sockets, as a peer would
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            closing = self._take("_close_next")
            threading.Thread(
                target=_quietly(self._downstream_or_close), args=(link,), daemon=True
            ).start()
            self._upstream(link, close_when_idle=closing)
        except BaseException:
            link.close(reset=True)
            raise

    def _downstream_or_close(self, link: _Link) -> None:
        try:
            self._downstream(link)
        except BaseException:
            link.close(reset=True)
            raise

    def _upstream(self, link: _Link, *, close_when_idle: bool) -> None:
        """Client to upstream: the hold applies here; a closing peer hangs up when idle."""
        assert link.upstream is not None
        seen = False
        while not link.closed.is_set():
            if close_when_idle and seen:
                link.client.settimeout(_IDLE)
            try:
                data = link.client.recv(_CHUNK)
            except TimeoutError:
                with self._lock:
                    self.closed_by_peer += 1
                link.client.settimeout(None)
                link.close()  # FIN now; the shipper's next batch gets a RST
                return
            except OSError:  # the shipper's connection was reset: what it sent still counts
                link.close()  # FIN upstream, so rsyslog keeps what was relayed already
                return
            if not data:
                with contextlib.suppress(OSError):
                    link.upstream.shutdown(socket.SHUT_WR)
                return
            hold = self.hold
            if hold is not None:
                hold.gate()
            try:
                link.upstream.sendall(data)
            except OSError:
                link.close(reset=True)
                return
            seen = True

    def _downstream(self, link: _Link) -> None:
        """Upstream to client: the next answer may be trickled."""
        assert link.upstream is not None
        while not link.closed.is_set():
            try:
                data = link.upstream.recv(_CHUNK)
            except OSError:
                link.close(reset=True)
                return
            if not data:
                with contextlib.suppress(OSError):
                    link.client.shutdown(socket.SHUT_WR)
                return
            try:
                if self._take("_trickle_next"):
                    self._send_trickled(link, data)
                    return
                link.client.sendall(data)
            except OSError:
                link.close(reset=True)
                return

    def _send_trickled(self, link: _Link, data: bytes) -> None:
        with self._lock:
            self.trickled += 1
            per_byte, at_most = self._trickle
        deadline = time.monotonic() + at_most
        for index in range(len(data)):
            if link.closed.wait(per_byte) or time.monotonic() > deadline:
                break
            link.client.sendall(data[index : index + 1])
        link.close()  # a peer that gives up after trickling: the answer never completes
