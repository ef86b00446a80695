"""Google Security Operations sink: the Chronicle API's `logs:import`, one request per batch.

Delivered means Google answered 200 to the import request that carried the event. 408, 429
and 5xx are retried under the sink's policy, honouring `Retry-After`; a 5xx that outlasts the
retries, a 400 (INVALID_ARGUMENT) or a 413 is taken as "this content is refused": the batch is
halved until the events behind it are found, and those go to the dead-letter file only when
Google took the others (`shipper.http.isolate.Evidence`). 401, 403 and 404 stop the sink with
what the operator must fix. Events too large for any request are dead-lettered before sending.

Audit-log events go under `log_type` (`OPENAI_AUDITLOG`: Google's default parser), ChatGPT
compliance records under `compliance_log_type`; one request carries one log type.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Callable, Sequence

import httpx

from shipper.sink_api import (
    RETRYABLE_STATUSES,
    AuditEvent,
    Item,
    Progress,
    Refused,
    Rejection,
    RetryPolicy,
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
    send_with_retries,
    sink_logger,
    sink_section,
)
from sinks.secops import protocol
from sinks.secops.auth import HttpxRequest, TokenSource, load_service_account
from sinks.secops.settings import SecOpsSettings

Sleep = Callable[[float], object]
Clock = Callable[[], dt.datetime]
COMPLIANCE_SOURCE = "chatgpt_compliance"
PROBE_POLICY = RetryPolicy(max_attempts=2, max_time=30.0)
# logTypes.get is documented in v1alpha; the probe reads it there whatever api_version says.
PROBE_VERSION = "v1alpha"
FATAL_STATUSES = frozenset({401, 403, 404})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SecOpsSink:
    def __init__(
        self,
        settings: SecOpsSettings,
        context: SinkContext | None = None,
        *,
        sleep: Sleep | None = None,
        clock: Clock = _now,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self._log = sink_logger(settings.name)
        self._sleep = sleep
        self._clock = clock
        self._base = settings.url.rstrip("/")
        self._client: httpx.Client | None = None
        self._tokens: TokenSource | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        section = sink_section(self.name)
        key_text = self.settings.credentials.read(section).get_secret_value()
        ref = self.settings.credentials
        where = f"{section}: {ref.key('file' if ref.file is not None else 'env')}"
        credentials = load_service_account(
            self.name, key_text, where=where, allow_plain_http=self.settings.allow_plain_http
        )
        try:
            client = make_client(self.settings)
        except (OSError, ssl.SSLError) as exc:
            raise SinkFatalError(self.name, f"cannot set up TLS: {exc}") from None
        self._tokens = TokenSource(self.name, credentials, HttpxRequest(client), sleep=self._sleep)
        self._client = client

    def flush(self) -> None:
        """Nothing to wait for: `send` returns only once Google answered every request."""

    def close(self) -> None:
        client, self._client = self._client, None
        self._tokens = None
        if client is not None:
            client.close()

    # -- delivery --------------------------------------------------------------------------
    def log_type_of(self, event: AuditEvent) -> str:
        if event.source_type != COMPLIANCE_SOURCE:
            return self.settings.log_type
        if self.settings.compliance_log_type is None:
            raise SinkFatalError(
                self.name,
                f"{sink_section(self.name)}: ChatGPT compliance records reached this sink but "
                "compliance_log_type is not set; create a custom log type in SecOps and name it there",
            )
        return self.settings.compliance_log_type

    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self.open()
        groups: dict[str, list[AuditEvent]] = {}
        for event in batch:
            groups.setdefault(self.log_type_of(event), []).append(event)
        collected = self._clock()
        delivered: list[AuditEvent] = []
        rejections: list[Rejection] = []
        for log_type, events in groups.items():
            try:
                refused = self._send_group(log_type, events, collected)
            except (SinkFatalError, SinkRetryableError) as exc:
                # Earlier log types were settled: say so, so they are not sent again.
                done = exc.progress
                exc.progress = Progress(
                    [*delivered, *(done.delivered if done else ())],
                    [*rejections, *(done.rejected if done else ())],
                )
                raise
            refused_ids = {id(r.event) for r in refused}
            delivered.extend(e for e in events if id(e) not in refused_ids)
            rejections.extend(refused)
        if rejections:
            self._log.warning("secops_events_refused", count=len(rejections))
        return rejections

    def _send_group(
        self, log_type: str, events: Sequence[AuditEvent], collected: dt.datetime
    ) -> list[Rejection]:
        encoded, rejections = self._encode(events, collected)
        path = self._path(self.settings.api_version, log_type) + "/logs:import"

        def attempt(items: Sequence[Item], *, quick: bool = False) -> Refused | None:
            return self._attempt(path, log_type, items, quick=quick)

        sendable = [event for event in events if id(event) in encoded]
        rejections.extend(
            deliver_in_batches(
                sendable,
                lambda event: encoded.pop(id(event)),
                attempt,
                sink=self.name,
                max_events=self.settings.batch_max_events,
                max_bytes=self.settings.batch_max_bytes - protocol.ENVELOPE_BYTES,
                acknowledged=True,  # a 200 from the import is Google's promise
            )
        )
        self._log.info(
            "secops_batch",
            log_type=log_type,
            events=len(events),
            rejected=len(rejections),
        )
        return rejections

    def _encode(
        self, events: Sequence[AuditEvent], collected: dt.datetime
    ) -> tuple[dict[int, bytes], list[Rejection]]:
        """Each event's `Log` bytes (keyed by identity); events that can never be sent, refused."""
        s = self.settings
        room = s.batch_max_bytes - protocol.ENVELOPE_BYTES - 1  # one entry alone in a request
        encoded: dict[int, bytes] = {}
        rejections: list[Rejection] = []
        for event in events:
            try:
                data = event.json
            except (TypeError, ValueError) as exc:
                rejections.append(Rejection(event, f"cannot encode as JSON: {redact(str(exc))}"))
                continue
            if len(data) > s.max_log_bytes:
                rejections.append(
                    Rejection(
                        event,
                        f"the event is {len(data)} bytes, over the {s.max_log_bytes}-byte "
                        "maximum for one log (max_log_bytes; Google documents 1 MB): it can "
                        "never be imported",
                    )
                )
                continue
            log = protocol.encode_log(
                event, data, collected, namespace=s.namespace, labels=s.labels
            )
            if len(log) > room:
                rejections.append(
                    Rejection(
                        event,
                        f"as a log entry (base64) the event takes {len(log)} bytes, more than a "
                        f"whole request may carry (batch_max_bytes = {s.batch_max_bytes}): it "
                        "can never be imported",
                    )
                )
                continue
            encoded[id(event)] = log
        return encoded, rejections

    def _path(self, version: str, log_type: str) -> str:
        return f"/{version}/{self.settings.parent()}/logTypes/{log_type}"

    def _attempt(
        self, path: str, log_type: str, items: Sequence[Item], *, quick: bool
    ) -> Refused | None:
        headers = {"content-type": "application/json", "accept": "application/json"}
        body = protocol.request_body([log for _, log in items])
        content = encode_body(body, self.settings.compression, headers)
        policy = policy_of(self.settings, quick=quick)
        response = self._send("POST", path, content, headers, policy=policy)
        self._log.debug("secops_request", events=len(items), status=response.status_code)
        status = response.status_code
        if 200 <= status < 300:
            return None
        if status in FATAL_STATUSES:
            google_status, _ = protocol.google_error(response)
            where = f"{self._base}/{self.settings.api_version}/{self.settings.parent()}"
            meaning = protocol.operator_meaning(status, google_status, where, log_type)
            raise SinkFatalError(self.name, f"{protocol.summary(response)}: {meaning}")
        return Refused(f"Google refused the import: {protocol.summary(response)}")

    # -- HTTP ------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str],
        *,
        policy: RetryPolicy,
        retry_statuses: frozenset[int] = RETRYABLE_STATUSES,
    ) -> httpx.Response:
        """One request with a valid token; a 401 gets one more try with a fresh token."""
        response = self._send_once(
            method, path, content, headers, policy=policy, retry_statuses=retry_statuses
        )
        if response.status_code == 401 and self._tokens is not None:
            self._tokens.invalidate()  # revoked or expired early: one new token, then believe it
            response = self._send_once(
                method, path, content, headers, policy=policy, retry_statuses=retry_statuses
            )
        return response

    def _send_once(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: dict[str, str],
        *,
        policy: RetryPolicy,
        retry_statuses: frozenset[int],
    ) -> httpx.Response:
        client, tokens = self._client, self._tokens
        if client is None or tokens is None:
            raise SinkFatalError(self.name, "used before open()")
        url = self._base + path

        def build() -> httpx.Request:
            # A token per attempt: a long back-off may outlive the previous one.
            auth = auth_headers("Bearer", tokens.token(policy))
            return client.build_request(method, url, headers={**headers, **auth}, content=content)

        try:
            return send_with_retries(
                client, self.name, policy, build, retry_statuses=retry_statuses, sleep=self._sleep
            )
        except httpx.HTTPError as exc:  # not a transport error (those are retried): e.g. decoding
            raise SinkRetryableError(
                self.name, f"{type(exc).__name__}: {redact(str(exc))}"
            ) from None

    # -- check -----------------------------------------------------------------------------
    def probe(self) -> str:
        """A token from Google (the key is valid), then the log types read back: no data sent."""
        self.open()
        assert self._tokens is not None
        self._tokens.token(PROBE_POLICY)
        account = self._tokens.service_account
        log_types = [self.settings.log_type]
        if self.settings.compliance_log_type:
            log_types.append(self.settings.compliance_log_type)
        found = [self._probe_log_type(log_type) for log_type in log_types]
        return f"token issued to {account}; " + "; ".join(found)

    def _probe_log_type(self, log_type: str) -> str:
        path = self._path(PROBE_VERSION, log_type)
        headers = {"accept": "application/json"}
        # A check answers at once: only connection failures are retried, statuses are reported.
        response = self._send(
            "GET", path, None, headers, policy=PROBE_POLICY, retry_statuses=frozenset()
        )
        status = response.status_code
        if status == 200:
            return f"log type {log_type} exists in instance {self.settings.instance}"
        if status in RETRYABLE_STATUSES:
            raise SinkRetryableError(
                self.name, f"{protocol.summary(response)}: the Chronicle API is not available now"
            )
        if status == 403:
            google_status, message = protocol.google_error(response)
            if google_status == "PERMISSION_DENIED" and "logTypes.get" in message:
                # Import needs only chronicle.logs.import; reading log types is a separate right.
                return (
                    f"log type {log_type} not checked (the account may not read log types: "
                    f"{message}); import permission is verified by the first delivery"
                )
        if status in (401, 403, 404):
            where = f"{self._base}/{PROBE_VERSION}/{self.settings.parent()}"
            google_status, _ = protocol.google_error(response)
            meaning = protocol.operator_meaning(status, google_status, where, log_type)
            raise SinkFatalError(self.name, f"{protocol.summary(response)}: {meaning}")
        raise SinkFatalError(
            self.name, f"{describe(response)}: this does not look like the Chronicle API; check url"
        )


class SecOpsPlugin:
    settings_model = SecOpsSettings

    def create(self, settings: SecOpsSettings, context: SinkContext) -> SecOpsSink:
        return SecOpsSink(settings, context)


plugin = SecOpsPlugin()
