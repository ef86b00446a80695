"""Sumo Logic HTTP source sink (`type = "sumologic"`): newline-separated messages, gzip.

The HTTP source's URL carries its token, so the URL is the secret: it is read from a variable or a
file (`url_env` / `url_file`), remembered for redaction, and never logged, raised or written to a
dead letter. Each event is one line (its JSON document; JSON escaping keeps every newline inside
the line); a request holds at most `batch_max_bytes` (Sumo recommends 100 KB to 1 MB
uncompressed). Source metadata comes from `X-Sumo-Category`, `X-Sumo-Name`, `X-Sumo-Host` and
`X-Sumo-Fields`.

Delivered means Sumo answered 200. That is all a client can know: when an ingest budget has
stopped the collector, Sumo still answers 200 and drops the data (docs/sinks/sumologic.md).
429 means Sumo dropped the request (quota throttling): it is sent again, honouring Retry-After,
like 408 (part may already be ingested: a duplicate, never a loss) and 5xx. An event whose line
is over 64 KB (Sumo would slice it into several messages) goes to the dead letters; 400/413 are
isolated to the events behind them; 401/403/404 stop the sink saying what to fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import httpx
from pydantic import Field, ValidationError, field_validator

from shipper.sink_api import (
    SERVER_ERRORS,
    AuditEvent,
    Duration,
    HttpSinkSettings,
    Item,
    Refused,
    Rejection,
    RetryPolicy,
    SecretRef,
    SecretUnavailableError,
    SinkContext,
    SinkFatalError,
    SinkRetryableError,
    SinkSettings,
    TlsSettings,
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

RECEIVER_PATH = re.compile(r"^https?://[^/?#]+/receiver/v1/http/[^/?#]+$")
MAX_REQUEST_BYTES = 1_000_000  # Sumo's recommended upper size (uncompressed) of one POST
MAX_MESSAGE_BYTES = 65_536  # a bigger message is sliced into several
# The shared table plus every 5xx: Sumo documents 503 and 504, its load balancers others.
RETRY_STATUSES = retryable_statuses(add=SERVER_ERRORS)
PROBE_POLICY = RetryPolicy(max_attempts=2, max_time=30.0)
FIELD_NAME = re.compile(r"^[A-Za-z0-9_]{1,255}$")
NOT_CHECKABLE = (
    "the URL's token cannot be checked without sending data (Sumo has no validation "
    "endpoint): the first delivery tells (401 = wrong URL); an exhausted ingest budget answers "
    "200 and drops data, which no client can detect"
)


class SumoLogicSettings(SinkSettings, TlsSettings):
    """`type = "sumologic"`: a Sumo Logic hosted collector's HTTP Logs source.

    Not an `HttpSinkSettings`: there `url` is plain text, here it is a secret; `open` builds one
    from these keys and the URL read, so the shared URL and client rules still apply.
    """

    type: Literal["sumologic"] = Field(description="Sink type.")
    url: SecretRef = Field(
        description="The HTTP source's URL (https://.../receiver/v1/http/<code>). It contains "
        "the source's token, so it is a secret: a variable or a file."
    )
    compression: Literal["gzip", "none"] = Field(
        default="gzip", description="Request body encoding."
    )
    timeout: Duration = Field(
        default=30.0, description="Timeout of one request (Sumo answers 408 after 30 s)."
    )
    request_deadline: Duration | None = Field(
        default=None,
        description="Longest one request may take, whatever the receiver does; default 2 x timeout.",
    )
    max_response_bytes: int = Field(
        default=1 << 20, ge=1024, description="Largest answer accepted from the receiver."
    )
    allow_plain_http: bool = Field(
        default=False, description="Allow an http:// URL to a non-loopback host."
    )
    source_category: str | None = Field(
        default=None, description="`X-Sumo-Category` (_sourceCategory); default: the source's."
    )
    source_name: str | None = Field(
        default=None, description="`X-Sumo-Name` (_sourceName); default: the source's."
    )
    source_host: str | None = Field(
        default=None, description="`X-Sumo-Host` (_sourceHost); default: the source's."
    )
    fields: dict[str, str] = Field(
        default={},
        description="`X-Sumo-Fields`: fields added to every message (each must exist in Sumo's "
        "field schema, or Sumo drops it).",
    )
    batch_max_events: int = Field(
        default=5000, ge=1, le=100_000, description="Most messages in one request."
    )
    batch_max_bytes: int = Field(
        default=MAX_REQUEST_BYTES,
        ge=1024,
        le=MAX_REQUEST_BYTES,
        description="Most bytes in one request before compression (Sumo recommends 100 KB-1 MB).",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("raw", "normalized", "ecs", "ocsf")

    @field_validator("format")
    @classmethod
    def _json_format(cls, value: str) -> str:
        if value not in cls.allowed_formats:
            raise ValueError(f"format must be one of {', '.join(cls.allowed_formats)}")
        return value

    @field_validator("source_category", "source_name", "source_host")
    @classmethod
    def _header_value(cls, value: str | None) -> str | None:
        if value is not None and (not value.isprintable() or not value.isascii()):
            raise ValueError("must be printable ASCII (it is sent as an HTTP header)")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not FIELD_NAME.match(name):
                raise ValueError(f"field name {name!r}: letters, digits and _ only")
            if any(c in text for c in ",=") or not (text.isprintable() and text.isascii()):
                raise ValueError(f"field {name!r}: value must be printable ASCII without , or =")
        return value

    def http_settings(self, url: str) -> HttpSinkSettings:
        """The shared HTTP settings for the URL read; `ValidationError` if the URL is refused."""
        values = {key: getattr(self, key) for key in HttpSinkSettings.model_fields if key != "url"}
        return HttpSinkSettings.model_validate({**values, "url": url})


def metadata_headers(settings: SumoLogicSettings) -> dict[str, str]:
    headers = {"content-type": "text/plain; charset=utf-8"}
    named = {
        "x-sumo-category": settings.source_category,
        "x-sumo-name": settings.source_name,
        "x-sumo-host": settings.source_host,
    }
    headers |= {name: value for name, value in named.items() if value}
    if settings.fields:
        headers["x-sumo-fields"] = ",".join(f"{k}={v}" for k, v in settings.fields.items())
    return headers


class SumoLogicSink:
    def __init__(
        self,
        settings: SumoLogicSettings,
        context: SinkContext | None = None,
        *,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self._render = renderer(settings.format)
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._url = ""
        self._headers = metadata_headers(settings)

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        ref = self.settings.url
        key = f"{sink_section(self.name)}: {ref.key('file' if ref.file else 'env')}"
        url = ref.read(sink_section(self.name)).get_secret_value()
        if not RECEIVER_PATH.match(url):
            raise SecretUnavailableError(
                "this is not a Sumo Logic HTTP source URL (expected "
                "https://<endpoint>/receiver/v1/http/<code>, from the source's settings)",
                key=key,
            )
        try:
            shared = self.settings.http_settings(url)
        except ValidationError as exc:
            reasons = "; ".join(str(error["msg"]) for error in exc.errors())
            raise SecretUnavailableError(redact(reasons), key=key) from None
        self._url = url
        self._client = make_client(shared)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def flush(self) -> None:
        """Nothing to wait for: `send` returns only once Sumo answered 200 to every request."""

    # -- delivery --------------------------------------------------------------------------
    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self.open()
        lines, rejections = self._encode(batch)
        rejections += deliver_in_batches(
            [event for event in batch if id(event) in lines],
            lambda event: lines[id(event)],
            self._attempt,
            sink=self.name,
            max_events=self.settings.batch_max_events,
            max_bytes=self.settings.batch_max_bytes,
            acknowledged=True,  # a 200 is all Sumo ever promises: nothing left for flush
        )
        if rejections:
            self._log.warning("sumologic_events_refused", count=len(rejections))
        return rejections

    def _encode(self, batch: Sequence[AuditEvent]) -> tuple[dict[int, bytes], list[Rejection]]:
        """Each event's line, by `id(event)`; events that can never be one message, and why."""
        lines: dict[int, bytes] = {}
        rejections: list[Rejection] = []
        for event in batch:
            try:
                line = self._render(event)
            except (TypeError, ValueError) as exc:  # orjson refuses e.g. lone surrogates
                rejections.append(Rejection(event, f"cannot encode as JSON: {redact(str(exc))}"))
                continue
            if len(line) > MAX_MESSAGE_BYTES:
                rejections.append(
                    Rejection(
                        event,
                        f"the message is {len(line):,} bytes: Sumo Logic slices messages over "
                        "64 KB (65,536 bytes) into several, so it is kept whole here instead",
                    )
                )
                continue
            lines[id(event)] = line
        return lines, rejections

    def _attempt(self, items: Sequence[Item], *, quick: bool = False) -> Refused | None:
        client = self._client
        if client is None:
            raise SinkFatalError(self.name, "send() called before open()")
        headers = dict(self._headers)
        body = encode_body(
            b"\n".join(line for _, line in items), self.settings.compression, headers
        )

        def build() -> httpx.Request:
            return client.build_request("POST", self._url, content=body, headers=headers)

        response = send_with_retries(
            client,
            self.name,
            policy_of(self.settings, quick=quick),
            build,
            retry_statuses=RETRY_STATUSES,
            sleep=self._sleep,
        )
        self._log.debug("sumologic_request", events=len(items), status=response.status_code)
        return self._verdict(response)

    def _verdict(self, response: httpx.Response) -> Refused | None:
        status = response.status_code
        if 200 <= status < 300:
            return None
        what = describe(response)
        if status in (401, 403):
            raise SinkFatalError(
                self.name,
                f"{what}: Sumo Logic refused the source URL's token: the HTTP source was "
                "deleted or its URL regenerated; put its current URL in url_env/url_file",
            )
        if status in (404, 405):
            raise SinkFatalError(
                self.name,
                f"{what}: no Sumo Logic HTTP source answers at the configured URL; copy it "
                "again from the source's settings",
            )
        if status == 413:
            return Refused(f"{what}: Sumo Logic refused the request as too large; it is split")
        return Refused(f"{what}: Sumo Logic refused the request")

    # -- check -----------------------------------------------------------------------------
    def probe(self) -> str:
        """Read and check the URL, then reach its host with a HEAD (no data): all Sumo allows."""
        self.open()
        client = self._client
        assert client is not None
        response = send_with_retries(
            client,
            self.name,
            PROBE_POLICY,
            lambda: client.build_request("HEAD", self._url),
            retry_statuses=frozenset(),
            sleep=self._sleep,
        )
        if 500 <= response.status_code < 600:
            raise SinkRetryableError(
                self.name, f"HTTP {response.status_code}: Sumo Logic is not available now"
            )
        return (
            f"source URL well-formed; collector endpoint reachable (HTTP {response.status_code} "
            f"to a HEAD); {NOT_CHECKABLE}"
        )


class SumoLogicPlugin:
    settings_model = SumoLogicSettings

    def create(self, settings: SumoLogicSettings, context: SinkContext) -> SumoLogicSink:
        return SumoLogicSink(settings, context)


plugin = SumoLogicPlugin()
