"""Datadog Logs sink (`type = "datadog"`): `POST /api/v2/logs` on the site's intake.

Each event is one log item (`sinks.datadog.protocol`); requests are JSON arrays of at most 1,000
items and `batch_max_bytes` (at most 5 MB) uncompressed, gzip by default, with `DD-API-KEY`.
Delivered means Datadog answered 202: accepted for processing. Datadog has no idempotency key, so
a re-sent window is stored twice (see docs/sinks/datadog.md for de-duplicating by `@id`).

Before sending, two kinds of events are set apart, each with its reason: one whose item is over
1 MB (Datadog would truncate it) goes to the dead letters; one whose time (`occurred_ms`: a
compliance record's own time) is older than the intake's 18-hour window is, per `late_events`,
sent flagged (`shipper_late:true`, real time in `event_time`) or dead-lettered. 408/429/5xx are
retried honouring Retry-After; 400 and 413 are isolated to the events behind them
(`shipper.http.isolate`); 401/403/404 stop the sink saying what to fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal, get_args

import httpx
from pydantic import Field, field_validator, model_validator

from shipper.sink_api import (
    SERVER_ERRORS,
    AuditEvent,
    HttpSinkSettings,
    Item,
    Refused,
    Rejection,
    RetryPolicy,
    SecretRef,
    SinkContext,
    SinkFatalError,
    SinkRetryableError,
    deliver_in_batches,
    describe,
    encode_body,
    make_client,
    occurred_ms,
    policy_of,
    redact,
    renderer,
    retryable_statuses,
    send_with_retries,
    sink_logger,
    sink_section,
)
from sinks.datadog.protocol import (
    LOGS_PATH,
    MAX_ITEMS,
    MAX_LOG_BYTES,
    MAX_PAYLOAD_BYTES,
    VALIDATE_PATH,
    ItemMeta,
    is_late,
    item,
    late_reason,
    payload,
    verdict,
)

Site = Literal[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
]
SITES: tuple[str, ...] = get_args(Site)
# The shared table plus every 5xx: Datadog documents 500 and 503, and its load balancers
# answer others; a 5xx that outlasts the retries is isolated like a refusal.
RETRY_STATUSES = retryable_statuses(add=SERVER_ERRORS)
# `check` answers at once: two attempts for a connection failure, statuses reported as they are.
PROBE_POLICY = RetryPolicy(max_attempts=2, max_time=30.0)
TAG_PATTERN = r"^[^,\s]{1,200}$"


class DatadogSettings(HttpSinkSettings):
    """`type = "datadog"`: Datadog Logs through the HTTP intake (API v2)."""

    type: Literal["datadog"] = Field(description="Sink type.")
    site: Site = Field(
        default="datadoghq.com",
        description="Your Datadog site (as in the app's address): " + ", ".join(SITES) + ".",
    )
    url: str = Field(
        default="",
        description="Intake base URL; default https://http-intake.logs.<site>. Set it only for "
        "a proxy (check then asks <url>/api/v1/validate too).",
    )
    api_key: SecretRef = Field(description="A Datadog API key: a variable or a file.")
    compression: Literal["gzip", "none"] = Field(
        default="gzip", description="Request body encoding."
    )
    ddsource: str = Field(default="openai", min_length=1, description="`ddsource` of every log.")
    service: str = Field(
        default="openai-audit-log", min_length=1, description="`service` of every log."
    )
    hostname: str | None = Field(default=None, description="`hostname` of every log; default none.")
    tags: list[str] = Field(
        default=[],
        description="Tags (`key:value`) added to every log's `ddtags`, besides event_type and "
        "organization.",
    )
    late_events: Literal["flag", "refuse"] = Field(
        default="flag",
        description="Events older than Datadog's 18-hour window: flag (sent without their time, "
        "tagged shipper_late:true, real time in event_time) or refuse (dead letters).",
    )
    batch_max_events: int = Field(
        default=MAX_ITEMS,
        ge=1,
        le=MAX_ITEMS,
        description="Most logs in one request (Datadog: 1000).",
    )
    batch_max_bytes: int = Field(
        default=4_250_000,
        ge=1024,
        le=MAX_PAYLOAD_BYTES,
        description="Most bytes in one request before compression (Datadog: 5 MB).",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("raw", "normalized", "ecs", "ocsf")

    @model_validator(mode="before")
    @classmethod
    def _intake_of_site(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("url"):
            site = data.get("site", "datadoghq.com")
            return {**data, "url": f"https://http-intake.logs.{site}"}
        return data

    @field_validator("format")
    @classmethod
    def _json_format(cls, value: str) -> str:
        if value not in cls.allowed_formats:
            raise ValueError(f"format must be one of {', '.join(cls.allowed_formats)}")
        return value

    @field_validator("url")
    @classmethod
    def _base(cls, value: str) -> str:
        if "/api/" in value:
            raise ValueError("url is the intake base (https://http-intake.logs.<site>), no path")
        return value.rstrip("/")

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if "," in tag or not tag.strip() or any(c.isspace() for c in tag):
                raise ValueError(f"tag {tag!r}: no commas or spaces (ddtags is comma-separated)")
        return value

    @property
    def api_base(self) -> str:
        """Where the key-validation endpoint lives: the api host of the site, or `url` if set."""
        if self.url == f"https://http-intake.logs.{self.site}":
            return f"https://api.{self.site}"
        return self.url


class DatadogSink:
    def __init__(
        self,
        settings: DatadogSettings,
        context: SinkContext | None = None,
        *,
        sleep: Callable[[float], object] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self._render = renderer(settings.format)
        self._meta = ItemMeta(
            settings.ddsource, settings.service, settings.hostname, tuple(settings.tags)
        )
        self._sleep = sleep
        self._clock = clock
        self._client: httpx.Client | None = None
        self._headers: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        key = self.settings.api_key.read(sink_section(self.name)).get_secret_value()
        self._headers = {"dd-api-key": key, "content-type": "application/json"}
        self._client = make_client(self.settings)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def flush(self) -> None:
        """Nothing to wait for: `send` returns only once Datadog answered 202 to every request."""

    # -- delivery --------------------------------------------------------------------------
    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self.open()
        encoded, rejections = self._encode(batch)
        sendable = [event for event in batch if id(event) in encoded]
        rejections += deliver_in_batches(
            sendable,
            lambda event: encoded[id(event)],
            self._attempt,
            sink=self.name,
            max_events=self.settings.batch_max_events,
            max_bytes=self.settings.batch_max_bytes - 1,  # the array's closing bracket
            acknowledged=True,  # a 202 is Datadog's promise: nothing left for flush
        )
        if rejections:
            self._log.warning("datadog_events_refused", count=len(rejections))
        return rejections

    def _encode(self, batch: Sequence[AuditEvent]) -> tuple[dict[int, bytes], list[Rejection]]:
        """Each event's item, by `id(event)`; events that can never go, with their reason."""
        now = (
            time.time() if self._clock is None else self._clock()
        )  # read per call, so a test may freeze it
        encoded: dict[int, bytes] = {}
        rejections: list[Rejection] = []
        flagged = 0
        for event in batch:
            when = occurred_ms(event)
            late = is_late(when, now)
            if late and self.settings.late_events == "refuse":
                rejections.append(Rejection(event, late_reason(when, now)))
                continue
            try:
                doc = item(event, self._render(event), self._meta, time_ms=when, late=late)
            except (TypeError, ValueError) as exc:  # orjson refuses e.g. lone surrogates
                rejections.append(Rejection(event, f"cannot encode as JSON: {redact(str(exc))}"))
                continue
            if len(doc) > MAX_LOG_BYTES:
                rejections.append(
                    Rejection(
                        event,
                        f"the log is {len(doc):,} bytes: Datadog truncates logs over 1 MB "
                        "(1,000,000 bytes), so it is kept whole here instead",
                    )
                )
                continue
            flagged += late
            encoded[id(event)] = doc
        if flagged:
            self._log.warning(
                "datadog_late_events_flagged",
                count=flagged,
                meaning="older than Datadog's 18-hour window: stored with their arrival time, "
                "tagged shipper_late:true, real time in event_time",
            )
        return encoded, rejections

    def _attempt(self, items: Sequence[Item], *, quick: bool = False) -> Refused | None:
        client = self._client
        if client is None:
            raise SinkFatalError(self.name, "send() called before open()")
        headers = dict(self._headers)
        body = encode_body(payload([doc for _, doc in items]), self.settings.compression, headers)
        url = self.settings.url + LOGS_PATH

        def build() -> httpx.Request:
            return client.build_request("POST", url, content=body, headers=headers)

        response = send_with_retries(
            client,
            self.name,
            policy_of(self.settings, quick=quick),
            build,
            retry_statuses=RETRY_STATUSES,
            sleep=self._sleep,
        )
        self._log.debug("datadog_request", events=len(items), status=response.status_code)
        return verdict(response, sink=self.name, site=self.settings.site, url=self.settings.url)

    # -- check -----------------------------------------------------------------------------
    def probe(self) -> str:
        """Validate the key on `/api/v1/validate`, then reach the intake; no log is sent."""
        self.open()
        key_ok = self._validate_key()
        intake = self._reach_intake()
        return f"{key_ok}; {intake}"

    def _get(self, url: str, headers: dict[str, str]) -> httpx.Response:
        client = self._client
        assert client is not None
        return send_with_retries(
            client,
            self.name,
            PROBE_POLICY,
            lambda: client.build_request("GET", url, headers=headers),
            retry_statuses=frozenset(),
            sleep=self._sleep,
        )

    def _validate_key(self) -> str:
        url = self.settings.api_base + VALIDATE_PATH
        response = self._get(url, {"dd-api-key": self._headers["dd-api-key"]})
        if response.status_code == 200:
            return f"API key valid on {self.settings.site}"
        verdict(response, sink=self.name, site=self.settings.site, url=self.settings.api_base)
        raise SinkRetryableError(self.name, f"{describe(response)}: the key could not be checked")

    def _reach_intake(self) -> str:
        # Without a key the intake answers without reading a payload: reachability, nothing sent.
        response = self._get(self.settings.url + LOGS_PATH, {})
        if 500 <= response.status_code < 600 or response.status_code in (408, 429):
            raise SinkRetryableError(
                self.name, f"{describe(response)}: the logs intake is not available now"
            )
        return f"intake {self.settings.url} reachable (HTTP {response.status_code} to a GET)"


class DatadogPlugin:
    settings_model = DatadogSettings

    def create(self, settings: DatadogSettings, context: SinkContext) -> DatadogSink:
        return DatadogSink(settings, context)


plugin = DatadogPlugin()
