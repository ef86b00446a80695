"""Service-account credentials through google-auth, over the sink's own httpx client.

google-auth signs the JWT assertion and exchanges it at the key's `token_uri` (grant type
`urn:ietf:params:oauth:grant-type:jwt-bearer`); the HTTP exchange goes through `HttpxRequest`,
so the token request has the same deadline, response cap, proxy and TLS settings as the imports.

google-auth retries a token request itself (three attempts, sleeping in between). The sink has
one retry layer, its own: `HttpxRequest` turns every answer google-auth would retry (a status
in its retryable set, or an OAuth error it counts as passing) into `TokenUnavailableError`
before google-auth sees it, and `TokenSource.token` retries that under the sink's policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from google.auth import exceptions as google_exceptions
from google.auth import transport
from google.oauth2 import service_account

from shipper.sink_api import (
    RETRYABLE_STATUSES,
    RetryPolicy,
    SinkFatalError,
    SinkRetryableError,
    log_retry,
    redact,
    remember,
    retrying,
    sink_logger,
)

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
# OAuth errors google-auth treats as passing (`google.oauth2._client._can_retry`).
PASSING_OAUTH_ERRORS = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})
REQUIRED_KEYS = ("type", "client_email", "private_key", "token_uri")
MAX_RETRY_AFTER = 300.0


class TokenUnavailableError(Exception):
    """The token endpoint answered with something worth asking again (or did not answer)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # read by the shared back-off (`shipper.retry`)


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return min(float(value.strip()), MAX_RETRY_AFTER)
    return None


class _Response(transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return dict(self._response.headers)

    @property
    def data(self) -> bytes:
        return self._response.content


def _oauth_error(content: bytes) -> str:
    try:
        answer = json.loads(content)
    except ValueError:
        return ""
    if not isinstance(answer, dict):
        return ""
    return " ".join(str(answer.get(k) or "") for k in ("error", "error_description")).strip()


class HttpxRequest(transport.Request):
    """google-auth's transport interface on an httpx client, raising on passing failures."""

    def __init__(self, client: httpx.Client) -> None:
        self._client = client

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> transport.Response:
        try:
            response = self._client.request(method, url, content=body, headers=headers)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TokenUnavailableError(
                f"token endpoint unreachable: {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        error = _oauth_error(response.content)
        passing = response.status_code != 200 and (
            response.status_code in transport.DEFAULT_RETRYABLE_STATUS_CODES
            or response.status_code in RETRYABLE_STATUSES
            or any(word in PASSING_OAUTH_ERRORS for word in error.split())
        )
        if passing:
            raise TokenUnavailableError(
                f"token endpoint answered HTTP {response.status_code} {redact(error)[:200]}".rstrip(),
                _retry_after(response.headers.get("retry-after")),
            )
        return _Response(response)


def load_service_account(
    sink: str, key_text: str, *, where: str, allow_plain_http: bool
) -> service_account.Credentials:
    """Credentials from a key's JSON; `SinkFatalError` naming `where` (never the key) if unusable."""
    try:
        info = json.loads(key_text)
    except ValueError:
        raise SinkFatalError(sink, f"{where}: not JSON (expected a service account key)") from None
    if not isinstance(info, dict):
        raise SinkFatalError(sink, f"{where}: not a service account key (a JSON object)")
    _remember_key(info)
    missing = [k for k in REQUIRED_KEYS if not isinstance(info.get(k), str) or not info.get(k)]
    if missing:
        raise SinkFatalError(sink, f"{where}: the key lacks {', '.join(missing)}")
    if info["type"] != "service_account":
        raise SinkFatalError(
            sink, f"{where}: type is {info['type']!r}; a service account key is needed"
        )
    token_uri = str(info["token_uri"])
    if not token_uri.startswith("https://") and not (allow_plain_http or _is_loopback(token_uri)):
        raise SinkFatalError(sink, f"{where}: token_uri must use https (got {token_uri!r})")
    try:
        # google-auth's constructors are not annotated.
        credentials: service_account.Credentials = (
            service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES
            )
        )
    except (ValueError, google_exceptions.GoogleAuthError) as exc:
        raise SinkFatalError(
            sink, f"{where}: the key cannot be used: {type(exc).__name__}: {redact(str(exc))}"
        ) from None
    return credentials


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("127.0.0.1", "::1", "localhost")


def _remember_key(info: dict[str, Any]) -> None:
    """Register the private key (whole, and each line, in case a fragment is ever echoed)."""
    for name in ("private_key", "private_key_id"):
        value = info.get(name)
        if isinstance(value, str):
            remember(value)
            for line in value.splitlines():
                if len(line) >= 16 and "PRIVATE KEY" not in line:
                    remember(line)


class TokenSource:
    """A valid access token when asked, refreshed (and retried) through the sink's one policy."""

    def __init__(
        self,
        sink: str,
        credentials: service_account.Credentials,
        request: HttpxRequest,
        *,
        sleep: Callable[[float], object] | None,
    ) -> None:
        self.sink = sink
        self._credentials = credentials
        self._request = request
        self._sleep = sleep
        self._log = sink_logger(sink)

    @property
    def service_account(self) -> str:
        return str(self._credentials.service_account_email)

    def invalidate(self) -> None:
        """Forget the token (the API refused it): the next `token` asks for a new one."""
        self._credentials.token = None

    def token(self, policy: RetryPolicy) -> str:
        """The current token, or a new one; `SinkFatalError` when Google refuses the key."""
        if self._credentials.valid:
            return str(self._credentials.token)
        kwargs = {"sleep": self._sleep} if self._sleep is not None else {}
        refresh = retrying(
            policy,
            retry_on=lambda exc: isinstance(exc, TokenUnavailableError),
            before_sleep=lambda state: log_retry(self._log, state),
            **kwargs,
        )
        try:
            refresh(self._credentials.refresh, self._request)
        except TokenUnavailableError as exc:
            raise SinkRetryableError(self.sink, f"no access token after retries: {exc}") from None
        except google_exceptions.RefreshError as exc:
            raise SinkFatalError(self.sink, refused_key_message(exc)) from None
        except google_exceptions.GoogleAuthError as exc:
            raise SinkFatalError(
                self.sink, f"cannot get an access token: {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        token = str(self._credentials.token)
        remember(token)
        return token


def refused_key_message(exc: google_exceptions.RefreshError) -> str:
    """What a refused token request means for the operator."""
    detail = redact(str(exc.args[0]) if exc.args else str(exc))[:300]
    return (
        f"Google refused the service account key ({detail}): the key may be deleted or disabled, "
        "the service account removed, the host clock minutes off, or token_uri wrong; "
        "create a new key and set credentials to it"
    )
