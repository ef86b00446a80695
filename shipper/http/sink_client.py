"""What every HTTP sink shares: settings, a safe client, status classes and the retry loop.

Redirects are never followed (a redirect would carry credentials to another place); plain
http:// is refused except to loopback unless explicitly allowed; TLS is verified by default.
Every request ends by its deadline, its answer is capped in size (`shipper.http.guard`), and
every httpx error is classified: retryable unless it is about our own request.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Mapping
from typing import Any, Literal

import httpx
from pydantic import Field, model_validator
from tenacity import RetryCallState

from shipper.config.durations import Duration
from shipper.config.settings import is_loopback_url
from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.http.guard import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ResponseTooLarge,
    environment_proxy,
    guarded_transport,
    read_capped,
    request_deadline,
)
from shipper.pipeline.sink import SinkSettings
from shipper.retry import RETRYABLE_STATUSES, RetryPolicy, log_retry, parse_retry_after, retrying
from shipper.runtime import stopping
from shipper.runtime.logs import sink_logger
from shipper.secrets import redact, remember
from shipper.tls import TlsSettings, client_context


class HttpSinkSettings(SinkSettings, TlsSettings):
    """Keys shared by the webhook, Splunk HEC and Elasticsearch sinks."""

    url: str = Field(description="Receiver URL (https:// unless the host is loopback).")
    compression: Literal["gzip", "none"] = Field(
        default="none", description="Request body encoding."
    )
    timeout: Duration = Field(default=30.0, description="Timeout of one request.")
    request_deadline: Duration | None = Field(
        default=None,
        description="Longest one request may take, whatever the receiver does; default 2 x timeout.",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=1024,
        description="Largest answer accepted from the receiver (decoded).",
    )
    allow_plain_http: bool = Field(
        default=False,
        description="Allow http:// to a non-loopback host (credentials in clear text).",
    )

    @model_validator(mode="after")
    def _safe_url(self) -> HttpSinkSettings:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with https:// (got {self.url!r})")
        if self.url.startswith("http://") and not (
            is_loopback_url(self.url) or self.allow_plain_http
        ):
            raise ValueError(
                "url uses plain http to a non-loopback host; use https or set allow_plain_http = true"
            )
        return self


class BoundedClient(httpx.Client):
    """An `httpx.Client` whose every exchange ends by `deadline` and reads at most `max_body`.

    `send` (which `request`, `post`, ... go through) reads the answer itself, capped, within the
    deadline; the response it returns is fully read.
    """

    def __init__(self, *, deadline: float, max_body: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deadline = deadline
        self.max_body = max_body

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        if kwargs.pop("stream", False):
            raise TypeError("BoundedClient reads every answer itself; stream=True is not offered")
        with request_deadline(self.deadline):
            response = super().send(request, stream=True, **kwargs)
            try:
                body = read_capped(response, self.max_body)
            finally:
                response.close()
        return _with_body(response, body)


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """`response` with its decoded `body` in place (the encoding headers no longer apply)."""
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions=response.extensions,
    )


def make_client(settings: HttpSinkSettings) -> BoundedClient:
    if not settings.tls_verify:
        sink_logger(settings.name).warning("tls_verification_disabled")
    verify = client_context(settings) if settings.url.startswith("https://") else True
    timeout = float(settings.timeout)
    deadline = settings.request_deadline
    return BoundedClient(
        deadline=2 * timeout if deadline is None else float(deadline),
        max_body=settings.max_response_bytes,
        # The environment's proxy is chosen here, for the one URL, so its transport is guarded too.
        transport=guarded_transport(verify=verify, proxy=environment_proxy(settings.url)),
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout),
        headers={"user-agent": "shipper/0.1"},
    )


def encode_body(body: bytes, compression: str, headers: dict[str, str]) -> bytes:
    if compression == "gzip":
        headers["content-encoding"] = "gzip"
        return gzip.compress(body, compresslevel=5)
    return body


def describe(response: httpx.Response) -> str:
    """Status plus a short, secret-free excerpt of the body, for errors and dead letters."""
    # Redact before cutting, so a secret straddling the cut cannot leave a readable half.
    excerpt = redact(response.text[:2000])[:300].replace("\n", " ")
    request_id = response.headers.get("x-request-id")
    suffix = f" (x-request-id {request_id})" if request_id else ""
    return f"HTTP {response.status_code} {response.reason_phrase}: {excerpt}{suffix}"


class _Retryable(Exception):
    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class ReceiverFailedError(SinkRetryableError):
    """Retries ran out on a request the receiver kept answering with a 5xx.

    Unlike a connection failure, this may be about the request's content (an event the receiver
    chokes on), so `shipper.http.isolate` narrows it down before taking it for an outage.
    """

    def __init__(self, sink: str, message: str, *, status: int) -> None:
        super().__init__(sink, message)
        self.status = status
        self.reason = message


# Errors about the answer or the way to it; another attempt may fare better. The rest of
# `httpx.HTTPError` is about our own request (an invalid URL, header or redirect): fatal.
_RETRYABLE_HTTPX = (httpx.TransportError, httpx.DecodingError, ResponseTooLarge)


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_Retryable, *_RETRYABLE_HTTPX))


def _what_failed(exc: BaseException) -> str:
    detail = f"{type(exc).__name__}: {redact(str(exc))}"
    if isinstance(exc, httpx.DecodingError):
        return f"{detail} (the answer does not match its Content-Encoding)"
    if isinstance(exc, httpx.TimeoutException):
        return f"{detail} (per-read timeout, or the request deadline)"
    return detail


def send_with_retries(
    client: httpx.Client,
    sink_name: str,
    policy: RetryPolicy,
    request: Callable[[], httpx.Request],
    *,
    retry_statuses: frozenset[int] = RETRYABLE_STATUSES,
    sleep: Callable[[float], object] | None = None,
) -> httpx.Response:
    """Send until a non-retryable answer; `SinkRetryableError` once the policy is exhausted.

    `request` builds a fresh request per attempt (so signatures and timestamps can be renewed).
    Any 3xx is fatal: we never follow redirects with credentials attached.
    """

    def attempt() -> httpx.Response:
        try:
            response = client.send(request())
        except _RETRYABLE_HTTPX:
            stopping.raise_if_requested()  # the failure is the stop cutting the request short
            raise
        if response.status_code in retry_statuses:
            raise _Retryable(
                describe(response),
                parse_retry_after(response.headers.get("retry-after")),
                response.status_code,
            )
        if 300 <= response.status_code < 400:
            raise SinkFatalError(
                sink_name,
                f"{describe(response)}: the receiver redirects to "
                f"{response.headers.get('location', '?')!r}; set url to the final address",
            )
        return response

    sink_log = sink_logger(sink_name)

    def note(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = None if exc is None or isinstance(exc, _Retryable) else _what_failed(exc)
        log_retry(sink_log, state, reason)

    kwargs = {"sleep": sleep} if sleep is not None else {}
    try:
        return retrying(policy, retry_on=_is_retryable, before_sleep=note, **kwargs)(attempt)
    except _Retryable as exc:
        message = f"gave up after retries: {exc}"
        if exc.status is not None and exc.status >= 500:
            raise ReceiverFailedError(sink_name, message, status=exc.status) from None
        raise SinkRetryableError(sink_name, message) from None
    except _RETRYABLE_HTTPX as exc:
        raise SinkRetryableError(sink_name, f"gave up after retries: {_what_failed(exc)}") from None
    except httpx.HTTPError as exc:
        raise SinkFatalError(sink_name, f"the request failed: {_what_failed(exc)}") from None


def policy_of(settings: SinkSettings, *, quick: bool = False) -> RetryPolicy:
    """The sink's retry policy; `quick` is the short one for pieces of a batch being isolated."""
    if quick:
        return RetryPolicy(
            max_attempts=min(settings.retry_max_attempts, 2),
            max_time=min(settings.retry_max_time, 30.0),
        )
    return RetryPolicy(max_attempts=settings.retry_max_attempts, max_time=settings.retry_max_time)


def auth_headers(scheme: str, token: str) -> Mapping[str, str]:
    """The Authorization header; the token (a bearer token, basic's base64 pair, ...) is redacted."""
    remember(token)
    return {"authorization": f"{scheme} {token}"}
