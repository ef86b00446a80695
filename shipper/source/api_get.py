"""An API client's HTTP: one kind of request, an authenticated GET of one page, over httpx.

Used by every source (the audit log's pages, the compliance source's listings and download
redirects). Kept behind a tiny interface so a client's retry logic sees one shape of answer and
one kind of failure, and so tests can hand in any `httpx.BaseTransport`.
Redirects are never followed here (they would carry the key elsewhere). Every GET ends by its
deadline and its body is capped (`shipper.http.guard`); every httpx error is a `TransportFailure`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from shipper.http.guard import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ResponseTooLarge,
    environment_proxy,
    guarded_transport,
    read_capped,
    request_deadline,
)
from shipper.runtime import stopping

__all__ = ["Getter", "HttpxGetter", "Reply", "TransportFailure", "environment_proxy"]


class Headers(Protocol):
    def get(self, name: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Headers  # case-insensitive lookup
    body: bytes


class TransportFailure(Exception):
    """The request got no usable answer (refused, reset, timed out, cut short); retryable."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause  # "timeout", "connection" or "body", for the retry metrics


class Getter(Protocol):
    def get(self, target: str) -> Reply:
        """GET `target` (path and query, relative to the base URL); `TransportFailure` if no answer."""

    def close(self) -> None: ...


class HttpxGetter:
    """Keep-alive GETs through an `httpx.Client`; `observe` receives each request's latency.

    The client's transport is guarded (`shipper.http.guard`), as every HTTP sink's is; so it
    cannot pick the proxy from the environment itself, and `environment_proxy` picks it as
    `httpx.Client` would (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY).
    """

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        *,
        connections: int,
        transport: httpx.BaseTransport | None = None,
        observe: Callable[[float], None] | None = None,
        deadline: float | None = None,
        max_body: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._deadline = 2 * timeout if deadline is None else deadline
        self._max_body = max_body
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.Client(
            headers={**headers, "accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
            transport=transport
            or guarded_transport(limits=limits, proxy=environment_proxy(self._base)),
        )
        self._observe = observe

    def get(self, target: str) -> Reply:
        began = time.monotonic()
        try:
            with (
                request_deadline(self._deadline),
                self._client.stream("GET", self._base + target) as response,
            ):
                body = read_capped(response, self._max_body)
        except (httpx.HTTPError, ResponseTooLarge) as exc:
            stopping.raise_if_requested()  # the failure is the stop cutting the request short
            raise TransportFailure(describe_failure(exc, self._deadline), cause_of(exc)) from None
        finally:
            if self._observe is not None:
                self._observe(time.monotonic() - began)
        return Reply(response.status_code, response.headers, body)

    def close(self) -> None:
        self._client.close()


def cause_of(exc: Exception) -> str:
    """The retry metrics' cause for an httpx error (or an oversized body)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.TransportError):
        return "connection"
    return "body"  # DecodingError, ResponseTooLarge, anything else httpx raises about the answer


def describe_failure(exc: Exception, deadline: float) -> str:
    """What went wrong with one request, for the operator (no secrets: httpx messages carry none)."""
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, httpx.DecodingError):
        return f"{detail} (the body does not match its Content-Encoding)"
    if isinstance(exc, httpx.TimeoutException):
        return f"{detail} (per-read timeout, or the request deadline of {deadline:g}s)"
    return detail
