"""Reading one log file from its signed URL: checked target, no credentials, streamed, verified.

`GET {base}/{scope}/logs/{id}` answers 307 to a signed URL on object storage (API.md §3.2). The
redirect is followed here, for downloads only and never by httpx itself:

- only to https (plain http only to a loopback host, for the emulator); anything else is
  refused, since the signed URL is a credential and the records may hold content;
- with no `Authorization` header (a second credential that storage refuses, and the key has no
  business leaving the API host); the signed URL's query string (its signature) is never logged
  or put in an error, only its host and path (`describe_url`);
- streamed with a total deadline (`download_deadline`) and a cap on the decoded size
  (`max_file_bytes`), each chunk handed on as it arrives and counted into a SHA-256;
- verified: a body shorter or longer than `file_size`, or whose SHA-256 (of the decoded bytes,
  compared case-insensitively) differs from `file_sha256`, is a retryable failure, never
  records delivered from a corrupt file.

Storage answering anything but 200 (403 for an expired signature) is retryable too: the next
attempt asks the API for a fresh URL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from shipper.config.settings import is_loopback_url
from shipper.errors import RetryableResponseError
from shipper.http.guard import (
    ResponseTooLarge,
    environment_proxy,
    guarded_transport,
    iter_capped,
    request_deadline,
)
from shipper.runtime import stopping
from shipper.source.api_get import cause_of, describe_failure
from shipper.source.chatgpt_compliance.listing import LogFile

REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_ORIGINS = 4  # storage hosts kept connected at once (one in practice)


class UnsafeRedirectError(Exception):
    """The download redirect points where the file must not be fetched from."""


def describe_url(url: str) -> str:
    """A URL for logs and errors: scheme, host and path; never the query (the signature)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def check_redirect(location: str | None) -> str:
    """The redirect target, if a file may be fetched from it; else `UnsafeRedirectError`."""
    if not location:
        raise UnsafeRedirectError("the download answered a redirect without a Location")
    parts = urlsplit(location)
    if parts.scheme == "https" and parts.hostname:
        return location
    if parts.scheme == "http" and is_loopback_url(location):
        return location  # the emulator's storage port
    raise UnsafeRedirectError(
        f"the download redirect points to {describe_url(location)!r}: only https is followed "
        "(the signed URL is a credential and the file may hold content); refused"
    )


class Storage:
    """GETs of signed URLs: unauthenticated keep-alive clients, one per storage origin."""

    def __init__(self, *, timeout: float, deadline: float, max_bytes: int) -> None:
        self._timeout = timeout
        self._deadline = deadline
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._clients: dict[str, httpx.Client] = {}

    def _client(self, url: str) -> httpx.Client:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            client = self._clients.get(origin)
            if client is None:
                if len(self._clients) >= _MAX_ORIGINS:
                    self._clients.pop(next(iter(self._clients))).close()
                client = httpx.Client(
                    # No Authorization, ever: these headers are all the request carries.
                    headers={"user-agent": "shipper/0.1", "accept": "*/*"},
                    timeout=httpx.Timeout(self._timeout),
                    follow_redirects=False,
                    trust_env=False,
                    transport=guarded_transport(proxy=environment_proxy(origin)),
                )
                self._clients[origin] = client
            return client

    def read(self, url: str, log_file: LogFile, consume: Callable[[bytes], None]) -> int:
        """Stream the file at `url` into `consume`, chunk by chunk, and verify it; its size.

        Every failure is a `RetryableResponseError` whose message names the host and path only.
        """
        where = describe_url(url)
        digest, size = hashlib.sha256(), 0
        try:
            with (
                request_deadline(self._deadline),
                self._client(url).stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise RetryableResponseError(
                        f"storage answered HTTP {response.status_code} for {where} "
                        "(an expired or refused signed URL: a fresh one is asked for)",
                        cause=f"http_{response.status_code}",
                    )
                for chunk in iter_capped(response, self._max_bytes):
                    digest.update(chunk)
                    size += len(chunk)
                    consume(chunk)
        except ResponseTooLarge:
            raise RetryableResponseError(
                f"log file {log_file.id} from {where} is larger than max_file_bytes "
                f"({self._max_bytes}); raise it to read this file",
                cause="body",
            ) from None
        except httpx.HTTPError as exc:
            stopping.raise_if_requested()
            detail = describe_failure(exc, self._deadline).replace(url, where)
            raise RetryableResponseError(
                f"downloading {log_file.id} from {where}: {detail}", cause=cause_of(exc)
            ) from None
        verify(log_file, size, digest.hexdigest(), where)
        return size

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def verify(log_file: LogFile, size: int, sha256: str, where: str) -> None:
    """The body read is the file listed: its size and SHA-256, when the listing gave them."""
    if log_file.size is not None and size != log_file.size:
        raise RetryableResponseError(
            f"log file {log_file.id} from {where}: {size} bytes read, the listing says "
            f"{log_file.size} (a body cut short or padded); not delivered",
            cause="body",
        )
    if log_file.sha256 is not None and sha256 != log_file.sha256.lower():
        raise RetryableResponseError(
            f"log file {log_file.id} from {where}: SHA-256 {sha256} differs from the listing's "
            f"file_sha256 {log_file.sha256} (a corrupt download); not delivered",
            cause="checksum",
        )
