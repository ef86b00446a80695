"""The audit-log client's HTTP: one kind of request, a GET of one page, over httpx.

Kept behind a tiny interface so the client's retry logic sees one shape of answer and one kind
of failure, and so tests can hand in any `httpx.BaseTransport` (`httpx.MockTransport`).
Redirects are never followed (they would carry the admin key elsewhere).
"""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
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
    """Keep-alive GETs through an httpx transport; `observe` receives each request's latency.

    Requests go straight to the transport (`httpx.HTTPTransport`: connection pool, TLS, proxy)
    rather than through `httpx.Client`, whose cookie jar, auth and redirect layers and second
    URL parse cost more CPU than the page itself on a fast link, and none of which this GET
    needs: the key is a fixed header, and redirects are never followed. The proxy is picked
    from the environment as `httpx.Client` would (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY).
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
    ) -> None:
        self._base = base_url.rstrip("/")
        self._headers = httpx.Headers({**headers, "accept": "application/json"})
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._transport = transport or httpx.HTTPTransport(
            limits=limits, proxy=environment_proxy(self._base)
        )
        self._observe = observe

    def get(self, target: str) -> Reply:
        began = time.monotonic()
        try:
            request = httpx.Request(
                "GET", self._base + target, headers=self._headers, extensions=self._extensions
            )
            response = self._transport.handle_request(request)
            try:
                body = response.read()
            finally:
                response.close()
        except httpx.TransportError as exc:
            cause = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection"
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TransportFailure(detail, cause) from None
        finally:
            if self._observe is not None:
                self._observe(time.monotonic() - began)
        return Reply(response.status_code, response.headers, body)

    def close(self) -> None:
        self._transport.close()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (None: connect directly), as curl and httpx read it."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return proxies.get(parts.scheme) or proxies.get("all")
