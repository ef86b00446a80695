"""HTTP webhook sink (`type = "webhook"`): batches of documents POSTed (or PUT) to a URL.

Delivered means the receiver answered 2xx to the request that carried the event. 408, 429 and
5xx are retried (honouring `Retry-After`); 401/403 stop the sink (credentials); 404, 405, 410 and
415 stop it too (the URL or the encoding is wrong, not the event); any other 4xx (400, 413,
422, ...) is taken as "this content is refused", and a 5xx that outlasts the retries as "this
content may crash the receiver": the batch is halved until the events behind it are isolated,
and those go to the dead-letter file only when the receiver took the others (the rule lives in
`shipper.http.isolate.Evidence`). Requests can be signed per the Standard Webhooks spec (see
`sinks.webhook.signing`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import Field, model_validator

from shipper.sink_api import (
    SERVER_ERRORS,
    AuditEvent,
    HttpSinkSettings,
    Item,
    Refused,
    Rejection,
    SecretRef,
    SinkContext,
    SinkFatalError,
    SinkRetryableError,
    auth_headers,
    deliver_in_batches,
    describe,
    encode_body,
    make_client,
    policy_of,
    redact,
    renderer,
    retryable_statuses,
    send_with_retries,
    sink_logger,
    sink_section,
)
from sinks.webhook.signing import (
    BadSigningSecretError,
    message_id,
    signature_headers,
    signing_key,
)

# The shared table plus every 5xx: a receiver is an arbitrary application, whose 501 or 507
# is as likely a passing fault as a 500 (a 5xx that outlasts the retries is then isolated).
RETRY_STATUSES = retryable_statuses(add=SERVER_ERRORS)
CONFIG_STATUSES = {
    404: "there is no endpoint at this URL",
    405: "the endpoint does not accept this method",
    410: "the receiver says this endpoint is gone (Standard Webhooks: stop sending)",
    415: "the receiver does not accept this encoding/compression",
}
CONTENT_TYPES = {"ndjson": "application/x-ndjson", "json_array": "application/json"}
# Headers the sink computes; letting `headers` override them would break auth, framing or signing.
RESERVED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "content-encoding",
        "content-length",
        "host",
        "transfer-encoding",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)


class WebhookSettings(HttpSinkSettings):
    """`type = "webhook"`."""

    type: Literal["webhook"] = Field(description="Sink type.")
    method: Literal["POST", "PUT"] = Field(default="POST", description="HTTP method.")
    headers: dict[str, str] = Field(
        default={}, description="Extra static headers (no secrets: use the *_env keys)."
    )
    encoding: Literal["ndjson", "json_array"] = Field(
        default="ndjson", description="Body: one JSON document per line, or one JSON array."
    )
    bearer_token: SecretRef | None = Field(
        default=None, description="A bearer token: a variable or a file."
    )
    username: str | None = Field(default=None, description="User for HTTP basic auth.")
    password: SecretRef | None = Field(
        default=None, description="The basic-auth password: a variable or a file."
    )
    secret: SecretRef | None = Field(
        default=None,
        description="A Standard Webhooks signing secret (whsec_...): a variable or a file.",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("raw", "normalized", "ecs", "ocsf")

    @model_validator(mode="after")
    def _consistent(self) -> WebhookSettings:
        bearer = self.bearer_token is not None
        password = self.password is not None
        if bearer and (self.username or password):
            raise ValueError("choose bearer_token_* or username + password_*, not both")
        if bool(self.username) != password:
            raise ValueError("basic auth needs both username and password_env/password_file")
        if reserved := sorted(k for k in self.headers if k.lower() in RESERVED_HEADERS):
            raise ValueError(f"headers may not set {', '.join(reserved)} (the sink computes them)")
        return self


def _read(ref: SecretRef | None, sink: str) -> str | None:
    """The secret if configured, else None; `SecretUnavailableError` if configured but unreadable."""
    return None if ref is None else ref.read(sink_section(sink)).get_secret_value()


class WebhookSink:
    def __init__(
        self,
        settings: WebhookSettings,
        context: SinkContext | None = None,
        *,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self._render = renderer(settings.format)
        self._sleep = sleep
        self._clock = clock
        self._client: httpx.Client | None = None
        self._headers: dict[str, str] = {}
        self._key: bytes | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        self._headers = self._static_headers()
        secret = _read(self.settings.secret, self.name)
        try:
            self._key = signing_key(secret) if secret else None
        except BadSigningSecretError as exc:
            raise SinkFatalError(self.name, redact(str(exc))) from None
        self._client = make_client(self.settings)

    def _static_headers(self) -> dict[str, str]:
        s = self.settings
        headers = {**s.headers, "content-type": CONTENT_TYPES[s.encoding]}
        if token := _read(s.bearer_token, self.name):
            headers.update(auth_headers("Bearer", token))
        if password := _read(s.password, self.name):
            pair = f"{s.username}:{password}".encode()
            headers.update(auth_headers("Basic", base64.b64encode(pair).decode("ascii")))
        return headers

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def flush(self) -> None:
        """Nothing to wait for: `send` returns only once every request was answered 2xx."""

    # -- delivery --------------------------------------------------------------------------
    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self.open()
        # A JSON array adds one byte ("]") past what `batches` counts per document.
        max_bytes = self.settings.batch_max_bytes - (self.settings.encoding == "json_array")
        rejections = deliver_in_batches(
            batch,
            self._render,
            self._attempt,
            sink=self.name,
            max_events=self.settings.batch_max_events,
            max_bytes=max_bytes,
            acknowledged=True,  # a 2xx answer is the receiver's promise: no flush to wait for
        )
        if rejections:
            self._log.warning("webhook_events_refused", count=len(rejections))
        return rejections

    def _payload(self, items: Sequence[Item]) -> bytes:
        docs = [doc for _, doc in items]
        if self.settings.encoding == "json_array":
            return b"[" + b",".join(docs) + b"]"
        return b"\n".join(docs) + b"\n"

    def _attempt(self, items: Sequence[Item], *, quick: bool = False) -> Refused | None:
        assert self._client is not None
        client = self._client
        payload = self._payload(items)
        headers = dict(self._headers)
        body = encode_body(payload, self.settings.compression, headers)
        msg_id = message_id(event.id for event, _ in items)

        def build() -> httpx.Request:
            attempt_headers = dict(headers)
            if self._key is not None:
                now = int(self._clock())
                attempt_headers.update(signature_headers(self._key, msg_id, now, payload))
            return client.build_request(
                self.settings.method, self.settings.url, content=body, headers=attempt_headers
            )

        response = send_with_retries(
            client,
            self.name,
            policy_of(self.settings, quick=quick),
            build,
            retry_statuses=RETRY_STATUSES,
            sleep=self._sleep,
        )
        self._log.debug("webhook_request", events=len(items), status=response.status_code)
        return self._verdict(response)

    def _verdict(self, response: httpx.Response) -> Refused | None:
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status in (401, 403):
            raise SinkFatalError(
                self.name,
                f"{describe(response)}: the receiver refused our credentials "
                "(check the bearer token, username/password or signing secret)",
            )
        if status in CONFIG_STATUSES:
            raise SinkFatalError(
                self.name, f"{describe(response)}: {CONFIG_STATUSES[status]}; check url and method"
            )
        return Refused(describe(response))

    # -- check -----------------------------------------------------------------------------
    def probe(self) -> str:
        """OPTIONS to the URL (no events); raises if unreachable or the credentials are refused."""
        self.open()
        assert self._client is not None
        auth = {k: v for k, v in self._headers.items() if k == "authorization"}
        try:
            response = self._client.request("OPTIONS", self.settings.url, headers=auth)
        except httpx.TransportError as exc:
            raise SinkRetryableError(
                self.name, f"unreachable: {type(exc).__name__}: {redact(str(exc))}"
            ) from None
        if response.status_code in (401, 403):
            raise SinkFatalError(self.name, f"{describe(response)}: credentials refused")
        if 300 <= response.status_code < 400:
            raise SinkFatalError(
                self.name, f"{describe(response)}: the URL redirects; use the final one"
            )
        return f"reachable: OPTIONS {self.settings.url} answered HTTP {response.status_code}"


class WebhookPlugin:
    settings_model = WebhookSettings

    def create(self, settings: WebhookSettings, context: SinkContext) -> WebhookSink:
        return WebhookSink(settings, context)


plugin = WebhookPlugin()
