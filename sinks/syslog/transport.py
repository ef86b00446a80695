"""The syslog sink's sockets: UDP datagrams, and a persistent TCP or TLS connection that is
reopened when the receiver closed it and can wait for the receiving TCP stack's acknowledgements.

Bytes written on a connection that is later abandoned (a write timed out, the receiver closed it)
may never have reached the receiving program. So the connection keeps every payload written since
the last confirmation and writes them all again, first, on each new connection: at confirmation,
the connection that is verified holds the whole window (a duplicate, never a gap)."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import ssl
import struct
import termios
import time

from shipper.sink_api import sink_logger

Address = tuple[str, int]
_ACK_POLL = (0.001, 0.05)  # first and longest pause while waiting for TCP acknowledgements
_C_INT = struct.Struct("i")  # what the ioctl writes: a C int, in the machine's byte order


def unacked_bytes(sock: socket.socket) -> int | None:
    """Bytes the peer has not acknowledged yet (Linux SIOCOUTQ); None where unsupported."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, _C_INT.pack(0))
    except (OSError, AttributeError):
        return None
    unacked: int = _C_INT.unpack(buf)[0]
    return unacked


def closed_reason(sock: socket.socket) -> str | None:
    """Why the receiver ended the connection, or None while it is open (checked without blocking)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        # On TLS this reads records (session tickets, alerts, close_notify); receivers send no data.
        tls = isinstance(sock, ssl.SSLSocket)
        data = sock.recv(1) if tls else sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return None
    except OSError as exc:
        return f"the receiver ended the connection: {describe(exc)}"
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return None if data else "the receiver closed the connection"


def describe(exc: BaseException) -> str:
    """A socket or TLS error in words an operator can act on."""
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the receiver listening?)"
    if isinstance(exc, TimeoutError):
        text = str(exc) or "timed out"
        return text if "timed out" in text else f"timed out: {text}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"TLS error {exc.reason}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- UDP -----------------------------------------------------------------------------


def resolve(address: Address) -> tuple[socket.AddressFamily, Address]:
    """The family and first address `address` resolves to for datagrams."""
    family, _, _, _, sockaddr = socket.getaddrinfo(*address, type=socket.SOCK_DGRAM)[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def sendto_all(address: Address, payloads: list[bytes], timeout: float) -> None:
    """Hands every payload to the kernel as one datagram each."""
    family, resolved = resolve(address)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        for payload in payloads:
            sock.sendto(payload, resolved)


# --- TCP and TLS ---------------------------------------------------------------------


class StreamConnection:
    """A persistent TCP (or, with `tls` set, TLS) connection, opened on first use."""

    def __init__(self, sink: str, address: Address, *, timeout: float, server_name: str) -> None:
        self._sink = sink
        self._log = sink_logger(sink)
        self._address = address
        self._timeout = timeout
        self._server_name = server_name
        self.tls: ssl.SSLContext | None = None
        self._sock: socket.socket | None = None
        # Written since the last confirmation; all of it is on `_sock` whenever `_sock` is set.
        self._unconfirmed: list[bytes] = []

    @property
    def tls_version(self) -> str | None:
        """The negotiated TLS version of the open connection; None for plain TCP or none open."""
        return self._sock.version() if isinstance(self._sock, ssl.SSLSocket) else None

    def write(self, payload: bytes) -> None:
        """Write `payload` whole on an open connection; it counts once `confirm()` says so."""
        sock = self.connection()
        try:
            sock.sendall(payload)
        except OSError:
            self.disconnect()
            raise
        self._unconfirmed.append(payload)

    def connection(self) -> socket.socket:
        """The open connection; a new one first carries everything written and not confirmed."""
        if self._sock is not None and (reason := closed_reason(self._sock)):
            self._log.info("syslog_reconnect", reason=reason)
            self.disconnect()
        if self._sock is None:
            sock = self._connect()
            if self._unconfirmed:
                size = sum(map(len, self._unconfirmed))
                self._log.info("syslog_resend_unconfirmed", bytes=size)
                try:
                    for payload in self._unconfirmed:
                        sock.sendall(payload)
                except OSError:
                    _close(sock)
                    raise
            self._sock = sock
        return self._sock

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self._address, timeout=self._timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if self.tls is not None:
                return self.tls.wrap_socket(sock, server_hostname=self._server_name)
        except BaseException:
            sock.close()
            raise
        return sock

    def confirm(self) -> str | None:
        """None once the receiving host acknowledged, on the open connection, every byte written
        since the last confirmation; else why not (and those bytes are forgotten: the caller
        fails the window, which is sent again)."""
        problem = self._undelivered()
        self._unconfirmed.clear()
        if problem is not None:
            self.disconnect()
        return problem

    def _undelivered(self) -> str | None:
        sock = self._sock
        if sock is None:
            # write() raises when it cannot leave its payload on an open connection.
            return "the connection was lost" if self._unconfirmed else None
        timeout = self._timeout
        deadline = time.monotonic() + timeout
        pause = _ACK_POLL[0]
        while True:
            pending = unacked_bytes(sock)
            if (closed := closed_reason(sock)) or not pending:
                return closed
            if time.monotonic() > deadline:
                return (
                    f"timed out: {pending} bytes not acknowledged by the receiver in {timeout:g}s"
                )
            time.sleep(pause)
            pause = min(pause * 2, _ACK_POLL[1])

    def abandon(self) -> None:
        """Disconnect and forget what was not confirmed (the window failed; it is sent again)."""
        self._unconfirmed.clear()
        self.disconnect()

    def disconnect(self) -> None:
        """Close the connection; what it carried unconfirmed goes again on the next one."""
        sock, self._sock = self._sock, None
        if sock is not None:
            _close(sock)


def _close(sock: socket.socket) -> None:
    if isinstance(sock, ssl.SSLSocket):
        # A close_notify spares the receiver a "connection not properly terminated" error.
        with contextlib.suppress(OSError, ValueError):
            sock.settimeout(0.2)
            sock.unwrap()
    with contextlib.suppress(OSError):
        sock.close()
