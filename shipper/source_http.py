"""The audit-log client's HTTP: one kind of request, a GET of one page, over httpx.

Kept behind a tiny interface so the client's retry logic sees one shape of answer and one kind
of failure, and so tests can hand in any `httpx.BaseTransport` (`httpx.MockTransport`).
Redirects are never followed (they would carry the admin key elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx


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
        self.cause = cause  # "timeout" or "connection", for the retry metrics


class Getter(Protocol):
    def get(self, target: str) -> Reply:
        """GET `target` (path and query, relative to the base URL); `TransportFailure` if no answer."""

    def close(self) -> None: ...


class HttpxGetter:
    """Keep-alive GETs through an httpx client; `observe` receives each request's latency."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        timeout: float,
        *,
        connections: int,
        transport: httpx.BaseTransport | None = None,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={**headers, "accept": "application/json"},
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._observe = observe

    def get(self, target: str) -> Reply:
        began = time.monotonic()
        try:
            response = self._client.get(target)
        except httpx.TransportError as exc:
            cause = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TransportFailure(detail, cause) from None
        finally:
            if self._observe is not None:
                self._observe(time.monotonic() - began)
        return Reply(response.status_code, response.headers, response.content)

    def close(self) -> None:
        self._client.close()
