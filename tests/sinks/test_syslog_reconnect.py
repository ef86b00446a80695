"""Syslog over TCP/TLS: a window is acknowledged only when all of it reached the verified connection.

A loopback stream receiver plays a wedged daemon (accepts, never reads) or a backend that closes
without processing what it was sent; a later connection reads normally. Whatever the sink did in
between (time out, reconnect, retry), `flush()` may return only if every event of the window is
on the connection it verified (duplicates are allowed, gaps are not), else it must fail the window.
"""

from __future__ import annotations

import contextlib
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme

from shipper.errors import SinkRetryableError
from shipper.model.event import AuditEvent
from sinks.syslog.sink import SyslogSink, SyslogSinkSettings, unacked_bytes

Behaviour = Literal["read", "stall", "close"]
DEADLINE = 10.0
NOTE = "n" * 2000  # ~2.5 KB per message: a few MB outgrow what a stalled loopback peer absorbs
_ID = re.compile(rb"audit_log-\d{5}")


@dataclass
class Connection:
    """One accepted connection: what it received (when it reads) and when it ended."""

    behaviour: Behaviour
    data: bytearray = field(default_factory=bytearray)
    ready: threading.Event = field(default_factory=threading.Event)  # handshake done
    ended: threading.Event = field(default_factory=threading.Event)
    close_now: threading.Event = field(default_factory=threading.Event)

    def ids(self) -> set[str]:
        return {m.decode() for m in _ID.findall(bytes(self.data))}


class StreamReceiver:
    """A TCP or TLS syslog receiver whose n-th connection behaves as `plan[n]` (then: read).

    "stall" accepts (and handshakes) but never reads; "close" reads and discards (a backend that
    dies with what it read) until the test sets `close_now`, then closes; "read" reads until the
    peer closes.
    """

    def __init__(self, plan: list[Behaviour], tls: ssl.SSLContext | None = None) -> None:
        self.plan = plan
        self.tls = tls
        self.connections: list[Connection] = []
        self._held: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._accepting = threading.Lock()
        self._stop = threading.Event()
        self.port: int = self._listener.getsockname()[1]

    def __enter__(self) -> StreamReceiver:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for conn in self.connections:
            conn.close_now.set()
        for thread in self._threads:
            thread.join(DEADLINE)
        for sock in self._held:
            with contextlib.suppress(OSError):
                sock.close()
        self._listener.close()

    def connection(self, index: int) -> Connection:
        """The `index`-th accepted connection, waiting (bounded) until it exists and is ready."""
        deadline = time.monotonic() + DEADLINE
        while len(self.connections) <= index:
            assert time.monotonic() < deadline, f"connection {index} never came"
            time.sleep(0.01)
        conn = self.connections[index]
        assert conn.ready.wait(DEADLINE), f"connection {index}: no handshake"
        return conn

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def settle(self) -> None:
        """Return once every connection the kernel completed is in `connections`."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            with self._accepting:
                if not select.select([self._listener], [], [], 0)[0]:
                    return
            time.sleep(0.01)
        raise AssertionError("connections still waiting to be accepted")

    def _accept(self) -> None:
        while not self._stop.is_set():
            with self._accepting:  # accept and record as one step (see settle)
                try:
                    if not select.select([self._listener], [], [], 0.05)[0]:
                        continue
                    sock, _ = self._listener.accept()
                except OSError:
                    return
                index = len(self.connections)
                behaviour = self.plan[index] if index < len(self.plan) else "read"
                conn = Connection(behaviour)
                self.connections.append(conn)
                self._held.append(sock)
            self._spawn(self._serve, sock, conn)

    def _serve(self, sock: socket.socket, conn: Connection) -> None:
        try:
            sock.settimeout(DEADLINE)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
                self._held.append(sock)
            conn.ready.set()
            if conn.behaviour == "stall":
                self._stop.wait(DEADLINE * 3)
            elif conn.behaviour == "close":
                sock.settimeout(0.02)
                deadline = time.monotonic() + DEADLINE * 3
                while not conn.close_now.is_set() and time.monotonic() < deadline:
                    with contextlib.suppress(TimeoutError, ssl.SSLWantReadError):
                        sock.recv(65536)  # read, never processed: a backend about to die
                sock.close()
            else:
                while chunk := sock.recv(65536):
                    conn.data += chunk
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.ready.set()
            conn.ended.set()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """The CA file a sink trusts, and a server context with a certificate for 127.0.0.1."""
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("pki") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    return ca_file, server


@contextlib.contextmanager
def receiver_and_sink(
    plan: list[Behaviour], transport: str, pki: tuple[Path, ssl.SSLContext], **overrides: Any
) -> Iterator[tuple[StreamReceiver, SyslogSink]]:
    with StreamReceiver(plan, pki[1] if transport == "tls" else None) as server:
        values: dict[str, Any] = {
            "type": "syslog", "name": "siem", "host": "127.0.0.1", "port": server.port,
            "transport": transport, "hostname": "shipper-host.example", "timeout": 1.0,
            "batch_max_events": 50, "retry_max_attempts": 5,
        }  # fmt: skip
        if transport == "tls":
            values |= {"ca_file": pki[0], "tls_server_name": "127.0.0.1"}
        sink = SyslogSink(SyslogSinkSettings.model_validate(values | overrides), sleep=lambda _: 0)
        sink.open()
        try:
            yield server, sink
        finally:
            sink.close()


def event(n: int) -> AuditEvent:
    return AuditEvent.from_api(
        {
            "id": f"audit_log-{n:05d}",
            "object": "organization.audit_log",
            "type": "api_key.created",
            "effective_at": 1_700_000_000 + n,
            "actor": {"type": "api_key", "api_key": {"id": "key_1", "type": "user"}},
            "api_key.created": {"id": f"key-{n}", "data": {"scopes": ["all"], "note": NOTE}},
        },
        organization="acme",
    )


def window(start: int, count: int) -> list[AuditEvent]:
    return [event(n) for n in range(start, start + count)]


def acknowledged(sink: SyslogSink) -> bool:
    """Whether flush() acknowledged the window (False: retryable failure, the window is re-sent)."""
    try:
        sink.flush()
    except SinkRetryableError:
        return False
    return True


def received_by_last_reader(server: StreamReceiver, sink: SyslogSink) -> set[str]:
    """The ids the last connection read, once the sink closed it and it read everything."""
    sink.close()
    server.settle()
    last = server.connections[-1]
    assert last.behaviour == "read" and last.ended.wait(DEADLINE)
    return last.ids()


@pytest.fixture(autouse=True)
def _needs_siocoutq() -> None:
    with socket.socket() as probe:
        if unacked_bytes(probe) is None:
            pytest.skip("this platform cannot tell unacknowledged bytes (SIOCOUTQ)")


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_syslog_window_part_left_on_an_abandoned_stalled_connection_is_sent_again(
    transport: str, pki: tuple[Path, ssl.SSLContext]
) -> None:
    """A wedged receiver's connection times out; what it swallowed is sent again, not lost."""
    events = window(0, 1600)  # ~4 MB: more than a stalled connection's buffers take
    with receiver_and_sink(["stall"], transport, pki) as (server, sink):
        assert list(sink.send(events)) == []
        server.connection(1)  # the writes timed out and the sink reconnected
        assert acknowledged(sink), "a reading connection was there: the window should go through"
        assert received_by_last_reader(server, sink) == {e.id for e in events}


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_syslog_batches_before_the_receiver_closed_are_sent_again_on_the_new_connection(
    transport: str, pki: tuple[Path, ssl.SSLContext]
) -> None:
    """Batches written before the receiver closed, unread, are sent again on the new connection."""
    first, second = window(0, 30), window(30, 30)
    with receiver_and_sink(["close"], transport, pki) as (server, sink):
        assert list(sink.send(first)) == []
        closing = server.connection(0)
        closing.close_now.set()
        assert closing.ended.wait(DEADLINE)
        assert list(sink.send(second)) == []
        server.connection(1)
        assert acknowledged(sink), "a reading connection was there: the window should go through"
        assert received_by_last_reader(server, sink) == {e.id for e in first + second}


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_syslog_reconnect_after_a_confirmed_window_does_not_resend_it(
    transport: str, pki: tuple[Path, ssl.SSLContext]
) -> None:
    """A window confirmed at flush is done: a reconnect in the next window re-sends only that one."""
    with receiver_and_sink(["close"], transport, pki) as (server, sink):
        assert list(sink.send(window(0, 5))) == []
        sink.flush()
        closing = server.connection(0)
        closing.close_now.set()
        assert closing.ended.wait(DEADLINE)
        assert list(sink.send(window(5, 5))) == []
        assert acknowledged(sink)
        assert received_by_last_reader(server, sink) == {e.id for e in window(5, 5)}


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_syslog_stalled_receiver_that_never_recovers_fails_the_window(
    transport: str, pki: tuple[Path, ssl.SSLContext]
) -> None:
    """Every connection wedged: the retries end in a retryable error, never an acknowledgement."""
    with (
        receiver_and_sink(["stall"] * 10, transport, pki, retry_max_attempts=2) as (_, sink),
        pytest.raises(SinkRetryableError, match="timed out"),
    ):
        sink.send(window(0, 1600))
        sink.flush()


def test_unacked_bytes_reads_the_kernels_count_of_bytes_the_peer_has_not_taken() -> None:
    """The delivery barrier's count is the kernel's C int as the machine stores it: bytes stuck
    behind a peer that never reads are counted (at most what was written), none on a fresh one."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with socket.create_connection(listener.getsockname(), timeout=DEADLINE) as sender:
            peer, _ = listener.accept()
            with peer:
                assert unacked_bytes(sender) == 0
                sender.setblocking(False)
                written = 0
                with contextlib.suppress(BlockingIOError):
                    for _ in range(10_000):  # the peer's window and our send buffer fill first
                        written += sender.send(b"x" * 65536)
                stuck = unacked_bytes(sender)
                assert stuck is not None and 0 < stuck <= written
