"""Bounds on every HTTP exchange: a total deadline, a response body cap, and no wait past a stop.

httpx's timeouts bound each read, not a request: a peer trickling a byte a second holds one
forever. Every socket the shipper's HTTP clients open (the API client's, every HTTP sink's)
goes through `GuardedBackend`, which gives each connect, TLS handshake, read and write at most
the time left before the calling thread's deadline (`request_deadline`), so a request ends by
its deadline whatever the peer does; and which shuts every live socket down when a stop cuts
the work in flight (`shipper.runtime.stopping`), so a read blocked on a silent peer returns at once.

Bodies are read incrementally and decoded size counted (`read_capped`): a 299 KiB gzip body
that inflates to 300 MiB is refused after the cap, not held in memory.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpcore
import httpx

from shipper.runtime import stopping

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024

_local = threading.local()  # .deadline: the monotonic time the current thread's request ends
_live: set[GuardedStream] = set()
_live_lock = threading.Lock()


class ResponseTooLarge(Exception):
    """The response body, decoded, is larger than the cap: refused, retryable."""


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Every socket operation of this thread ends by `seconds` from now (nested: the earlier)."""
    previous: float | None = getattr(_local, "deadline", None)
    deadline = time.monotonic() + seconds
    _local.deadline = deadline if previous is None else min(previous, deadline)
    try:
        yield
    finally:
        _local.deadline = previous


def _bounded(timeout: float | None, expired: type[Exception], what: str) -> float | None:
    """`timeout`, shortened to what is left of this thread's deadline; raise `expired` if none."""
    if stopping.abandoning():
        raise httpcore.ReadError("stop requested: request abandoned")
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired(f"the request outlasted its deadline ({what}); the peer is too slow")
    return left if timeout is None else min(timeout, left)


class GuardedStream(httpcore.NetworkStream):
    """A network stream whose every operation keeps to the calling thread's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        with _live_lock:
            _live.add(self)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout, "reading"))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout, "writing"))

    def close(self) -> None:
        with _live_lock:
            _live.discard(self)
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout, "TLS handshake")
        inner = self._inner.start_tls(ssl_context, server_hostname, bounded)
        with _live_lock:
            _live.discard(self)  # the TLS stream owns the same socket from now on
        return GuardedStream(inner)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)

    def abort(self) -> None:
        """Shut the socket down: a read or write blocked on it in another thread returns now."""
        sock = self._inner.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with suppress(OSError):
                # socket.socket's own shutdown: SSLSocket's would drop its SSL state under a
                # reader in another thread; this only wakes that reader with an error.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's backend, its connects bounded by the deadline and its streams guarded."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout, "connecting")
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return GuardedStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout, "connecting")
        return GuardedStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        stopping.pause(seconds)


def abort_all() -> None:
    """Shut down every live socket (stop requested): requests in flight fail at once."""
    with _live_lock:
        streams = list(_live)
    for stream in streams:
        stream.abort()


stopping.on_stop(abort_all)


def guarded_transport(**kwargs: Any) -> httpx.HTTPTransport:
    """An `httpx.HTTPTransport` (same arguments) whose sockets go through `GuardedBackend`."""
    transport = httpx.HTTPTransport(**kwargs)
    # httpx takes no network backend, so it is swapped in on the pool it built (a proxy's too);
    # tests/core/test_hung_peers.py fails if a new httpx or httpcore moves it.
    pool = transport._pool
    pool._network_backend = GuardedBackend(pool._network_backend)
    return transport


def read_capped(response: httpx.Response, cap: int) -> bytes:
    """The decoded body of a streamed `response`; `ResponseTooLarge` as soon as it passes `cap`.

    gzip and deflate are inflated here, at most `_INFLATE_STEP` bytes at a time, so a bomb is
    refused without ever holding more than the cap (httpx inflates a whole network read at once:
    64 KiB of gzip can be 64 MiB). A body that does not inflate is an `httpx.DecodingError`.
    """
    return b"".join(iter_capped(response, cap))


def iter_capped(response: httpx.Response, cap: int) -> Iterator[bytes]:
    """The decoded body of a streamed `response` chunk by chunk (for a body too large to hold,
    such as a log file); `ResponseTooLarge` as soon as it passes `cap`, as `read_capped`."""
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        pieces = _inflate(response.iter_raw())
    else:
        pieces = response.iter_bytes()
    size = 0
    for chunk in pieces:
        size += len(chunk)
        if size > cap:
            how = f" (Content-Encoding {encoding})" if encoding else ""
            raise ResponseTooLarge(
                f"HTTP {response.status_code}: the response body{how} is larger than "
                f"{cap} bytes decoded; refused (max_response_bytes)"
            )
        yield chunk


_INFLATE_STEP = 256 * 1024


def _inflate(raw: Iterable[bytes]) -> Iterator[bytes]:
    """Inflate gzip or zlib-wrapped deflate from `raw`, yielding at most `_INFLATE_STEP` at a time."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # either header, detected
    try:
        for received in raw:
            data = received
            while data and not inflater.eof:
                yield inflater.decompress(data, _INFLATE_STEP)
                data = inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error as exc:
        raise httpx.DecodingError(
            f"the body does not inflate as its Content-Encoding says: {exc}"
        ) from None


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (None: connect directly), as curl and httpx read it."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")
