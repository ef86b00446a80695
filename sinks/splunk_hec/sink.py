"""Splunk HTTP Event Collector sink (`type = "splunk_hec"`).

Events go to `POST {url}/services/collector/event` as concatenated HEC event objects, each
document under `event`, with `time` = when the event happened (`occurred_ms`: a compliance
record's own time, not its log file's end time) and, unless configured, the sourcetype and
source of its kind (`openai:audit` for the audit log, `openai:compliance:<type>` for each
compliance record type). Delivered means: HEC reported the request's `ackId` as indexed
(indexer acknowledgement, checked in `flush()`, so the cursor moves only over indexed data), or,
without it, only that HEC answered 200 (accepted, and lost if HEC dies before indexing).
`indexer_ack = "auto"` (the default) uses acknowledgement when the token has it: asked at start
on `/services/collector/ack`, else told by the first reply (an `ackId` or none); when it is off,
a warning says so at start and `check` says so.

429/5xx (503 code 9 "server busy" included) are retried; a bad token, a missing index or a
refused channel stops the sink with a message saying what to fix; code 6 with
`invalid-event-number` dead-letters exactly that event and resends the rest; 413 halves the batch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import httpx
import orjson
from pydantic import Field, field_validator

from shipper.sink_api import (
    SERVER_ERRORS,
    AuditEvent,
    Duration,
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
    document_renderer,
    encode_body,
    make_client,
    pause,
    policy_of,
    retryable_statuses,
    send_with_retries,
    sink_logger,
    sink_section,
)
from sinks.splunk_hec.ack import AckTracker
from sinks.splunk_hec.probe import ACK_OFF, ack_supported, ack_verdict, probe_hec
from sinks.splunk_hec.protocol import (
    ACK_PATH,
    EVENT_PATH,
    Envelope,
    envelope,
    parse_reply,
    raise_if_fatal,
    refusal,
)

HEC_MAX_CONTENT_LENGTH = 1_000_000  # Splunk's default [http_input] max_content_length
# The shared table plus every 5xx: HEC documents 500 (code 8, internal error) and 503 (code 9,
# server busy; 18-20, unhealthy), and the load balancer usually in front of it answers others.
RETRY_STATUSES = retryable_statuses(add=SERVER_ERRORS)


class SplunkHecSettings(HttpSinkSettings):
    """`type = "splunk_hec"`."""

    type: Literal["splunk_hec"] = Field(description="Sink type.")
    url: str = Field(description="HEC base URL, e.g. https://splunk.example.com:8088 (no path).")
    token: SecretRef = Field(description="The HEC token: a variable or a file.")
    index: str | None = Field(default=None, description="Target index; default: the token's.")
    sourcetype: str | None = Field(
        default=None,
        min_length=1,
        description="Sourcetype of every event; default: each event's own, openai:audit for the "
        "audit log and openai:compliance:<type in lower case> for compliance records (the "
        "stanzas of deploy/splunk/props.conf).",
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        description="Source of every event; default: openai:audit_log for the audit log, "
        "openai:chatgpt_compliance for compliance records.",
    )
    host: str | None = Field(
        default=None, description="Host field; default: the token's default host."
    )
    indexed_fields: bool = Field(
        default=True, description="Add indexed fields event_type and organization (`fields`)."
    )
    indexer_ack: bool | Literal["auto"] = Field(
        default="auto",
        description="Wait for indexer acknowledgement before moving the cursor; auto: when the "
        "token has it enabled.",
    )
    ack_timeout: Duration = Field(
        default=300.0, description="Re-send a batch not acknowledged within this time."
    )
    ack_poll_interval: Duration = Field(default=1.0, description="Pause between ack queries.")
    ack_max_resends: int = Field(
        default=2, ge=0, le=20, description="Re-sends of an unacknowledged batch before giving up."
    )
    channel: str | None = Field(
        default=None, description="Data channel GUID; default: a new one each time shipper starts."
    )
    batch_max_bytes: int = Field(
        default=900_000,
        ge=1024,
        le=HEC_MAX_CONTENT_LENGTH,
        description="Most bytes in one request before compression (HEC's default limit is 1 MB).",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("raw", "normalized")

    @field_validator("channel")
    @classmethod
    def _guid(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                uuid.UUID(value)
            except ValueError:
                raise ValueError(
                    "channel must be a GUID such as 0aeeac95-ac74-4aa9-b30d-6c4c0ac581ba"
                ) from None
        return value

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if "/services/collector" in value:
            raise ValueError("url is the HEC base (https://host:8088), without /services/collector")
        return value.rstrip("/")


class SplunkHecSink:
    def __init__(
        self,
        settings: SplunkHecSettings,
        context: SinkContext | None = None,
        *,
        sleep: Callable[[float], object] = pause,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self.channel = settings.channel or str(uuid.uuid4())
        self._render = document_renderer(settings.format)
        self._meta = Envelope(
            settings.sourcetype,
            settings.source,
            settings.host,
            settings.index,
            settings.indexed_fields,
        )
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._headers: dict[str, str] = {}
        self._clock = clock
        self._acks: AckTracker[Item] | None = None
        # None while `indexer_ack = "auto"` has not found out whether the token has it.
        self.indexer_ack: bool | None = None
        if settings.indexer_ack is True:
            self._use_ack(True)

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        token = self.settings.token.read(sink_section(self.name))
        self._headers = {
            **auth_headers("Splunk", token.get_secret_value()),
            "x-splunk-request-channel": self.channel,
        }
        self._client = make_client(self.settings)
        if self.settings.indexer_ack is False:
            self._use_ack(False, "indexer_ack = false")
        elif self.indexer_ack is None:
            supported, why = ack_supported(self._client, self.settings.url, self._headers)
            if supported is not None:
                self._use_ack(supported, why)

    def _use_ack(self, on: bool, why: str = "") -> None:
        """Settle indexer acknowledgement on or off; off is said loudly (fewer guarantees)."""
        self.indexer_ack = on
        if on:
            self._acks = AckTracker(
                self.name,
                poll=self._poll_acks,
                resend=self._resend,
                timeout=self.settings.ack_timeout,
                interval=self.settings.ack_poll_interval,
                max_resends=self.settings.ack_max_resends,
                clock=self._clock,
                sleep=self._sleep,
            )
        else:
            self._log.warning(
                "hec_indexer_ack_off",
                reason=why,
                meaning=ACK_OFF,
                fix="enable indexer acknowledgement on the HEC token",
            )

    def close(self) -> None:
        if self._acks is not None:
            self._acks.discard()
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def flush(self) -> None:
        """With indexer acknowledgement, wait until HEC reports every sent batch as indexed."""
        if self._acks is not None and self._acks.pending:
            self._acks.wait()

    def probe(self) -> str:
        self.open()
        assert self._client is not None
        verdict = probe_hec(self.name, self._client, self.settings.url, self._headers)
        supported, why = ack_supported(self._client, self.settings.url, self._headers)
        if self.settings.indexer_ack is True and supported is False:
            raise SinkFatalError(
                self.name,
                f"{verdict}; indexer acknowledgement: {why}, but indexer_ack = true: enable it "
                "on the token or set indexer_ack = false",
            )
        return f"{verdict}; {ack_verdict(self.settings.indexer_ack, supported, why)}"

    # -- delivery --------------------------------------------------------------------------
    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self.open()
        rejections = deliver_in_batches(
            batch,
            lambda event: envelope(event, self._render(event), self._meta),
            self._attempt,
            sink=self.name,
            max_events=self.settings.batch_max_events,
            max_bytes=self.settings.batch_max_bytes,
            acknowledged=self._acks is None,
        )
        if rejections:
            self._log.warning("hec_events_refused", count=len(rejections))
        return rejections

    def _post(
        self, path: str, payload: bytes, *, compress: bool = True, quick: bool = False
    ) -> httpx.Response:
        assert self._client is not None
        client = self._client
        headers = dict(self._headers)
        body = encode_body(payload, self.settings.compression if compress else "none", headers)
        url = self.settings.url + path

        def build() -> httpx.Request:
            return client.build_request("POST", url, content=body, headers=headers)

        return send_with_retries(
            client,
            self.name,
            policy_of(self.settings, quick=quick),
            build,
            retry_statuses=RETRY_STATUSES,
            sleep=self._sleep,
        )

    def _send_items(
        self, items: Sequence[Item], *, quick: bool = False
    ) -> tuple[Refused | None, int | None]:
        response = self._post(EVENT_PATH, b"\n".join(doc for _, doc in items), quick=quick)
        reply = parse_reply(response)
        raise_if_fatal(self.name, response, reply, self.settings.index)
        # Unless acknowledgement is known off, the accepted prefix of a refused batch is unproven.
        refused = refusal(response, reply, prefix_accepted=self.indexer_ack is False)
        if refused is None and self.indexer_ack is None and reply.code == 0:
            self._use_ack(reply.ack_id is not None, "HEC's reply carried no ackId")
        if (
            refused is None
            and self.settings.indexer_ack is True
            and reply.ack_id is None
            and reply.code == 0
        ):
            raise SinkFatalError(
                self.name,
                "indexer_ack = true but HEC returned no ackId: indexer acknowledgement is not "
                "enabled for this token; enable it on the token or set indexer_ack = false",
            )
        return refused, reply.ack_id

    def _attempt(self, items: Sequence[Item], *, quick: bool = False) -> Refused | None:
        refused, ack_id = self._send_items(items, quick=quick)
        if refused is None and self._acks is not None:
            self._acks.track(items, ack_id)
        return refused

    def _resend(self, items: Sequence[Item]) -> int | None:
        refused, ack_id = self._send_items(items)
        if refused is not None:
            # HEC took these very bytes before; refusing them now is not the event's fault.
            raise SinkRetryableError(self.name, f"HEC refused a re-sent batch: {refused.reason}")
        return ack_id

    def _poll_acks(self, ids: list[int]) -> dict[int, bool]:
        response = self._post(ACK_PATH, orjson.dumps({"acks": ids}), compress=False)
        reply = parse_reply(response)
        raise_if_fatal(self.name, response, reply, self.settings.index)
        if not 200 <= response.status_code < 300:
            raise SinkRetryableError(self.name, f"ack query failed: HTTP {response.status_code}")
        return {ack: reply.acks.get(str(ack)) is True for ack in ids}


class SplunkHecPlugin:
    settings_model = SplunkHecSettings

    def create(self, settings: SplunkHecSettings, context: SinkContext) -> SplunkHecSink:
        return SplunkHecSink(settings, context)


plugin = SplunkHecPlugin()
