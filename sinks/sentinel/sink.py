"""Microsoft Sentinel sink (`type = "sentinel"`): the Azure Monitor Logs Ingestion API.

`POST {url}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01` with a gzip JSON
array of records and an Entra ID bearer token (`sinks.sentinel.auth`). Delivered means the API
answered 204: it took the records; it processes them later, and a record its DCR cannot map is
dropped then, visible only in the DCR's `DCRLogErrors` and metrics (docs/sinks/sentinel.md).

Requests keep the uncompressed array at most 1,000,000 bytes (the documented 1 MB counts both
compressed and uncompressed data); an event that alone is larger can never be sent and goes to
the dead letters with its size. 429 and 5xx are retried, honouring `Retry-After`; 413 and 400
split the request until the event behind it is found (`shipper.http.isolate`); 401, 403 and
404 stop the sink with what to fix on the Azure side. The API has no idempotency key: a batch
sent again after a lost answer is stored twice (de-duplicate at query time on the id column).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Callable, Sequence

import httpx
import orjson

from shipper.sink_api import (
    SERVER_ERRORS,
    AuditEvent,
    Item,
    Refused,
    Rejection,
    RetryPolicy,
    SinkContext,
    SinkFatalError,
    SinkRetryableError,
    deliver_in_batches,
    describe,
    document_renderer,
    encode_body,
    log_retry,
    make_client,
    pause,
    policy_of,
    redact,
    retryable_statuses,
    retrying,
    send_with_retries,
    sink_logger,
)
from sinks.sentinel import auth
from sinks.sentinel.records import Shape, generic, openai_solution, oversized_fields
from sinks.sentinel.settings import MAX_REQUEST_BYTES, SentinelSettings

Sleep = Callable[[float], object]
API_VERSION = "2023-01-01"
# The shared table plus every 5xx: the API documents 5xx as passing (some are not even logged).
RETRY_STATUSES = retryable_statuses(add=SERVER_ERRORS)
PROBE_POLICY = RetryPolicy(max_attempts=2, max_time=30.0)


class SentinelSink:
    def __init__(
        self,
        settings: SentinelSettings,
        context: SinkContext | None = None,
        *,
        sleep: Sleep | None = None,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self._log = sink_logger(settings.name)
        self._sleep = sleep
        self._url = settings.url.rstrip("/") + settings.ingest_path
        self._client: httpx.Client | None = None
        self._credential: auth.Credential | None = None
        self._shape: Shape | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        s = self.settings
        if s.profile == "openai_solution":
            self._shape = openai_solution(s.connector_name)
        else:
            try:
                self._shape = generic(document_renderer(s.format))
            except (ImportError, ValueError) as exc:
                raise SinkFatalError(self.name, f"format {s.format!r}: {exc}") from None
        self._credential = auth.make_credential(s, float(s.timeout))
        try:
            self._client = make_client(s)
        except (OSError, ssl.SSLError) as exc:
            raise SinkFatalError(self.name, f"cannot set up TLS: {exc}") from None

    def flush(self) -> None:
        """Nothing to wait for: `send` returns only once every request was answered 204."""

    def close(self) -> None:
        client, self._client = self._client, None
        credential, self._credential = self._credential, None
        if client is not None:
            client.close()
        if credential is not None:
            credential.close()

    # -- delivery --------------------------------------------------------------------------
    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self.open()
        encoded, rejections = self._encode(batch)
        sendable = [event for event in batch if id(event) in encoded]
        # `batches` counts a byte per record (the comma); the array adds one more ("]").
        rejections += deliver_in_batches(
            sendable,
            lambda event: encoded[id(event)],
            self._attempt,
            sink=self.name,
            max_events=self.settings.batch_max_events,
            max_bytes=self.settings.batch_max_bytes - 1,
            acknowledged=True,  # a 204 is the service's acceptance: nothing left for flush
        )
        if rejections:
            self._log.warning("sentinel_events_refused", count=len(rejections))
        return rejections

    def _encode(self, batch: Sequence[AuditEvent]) -> tuple[dict[int, bytes], list[Rejection]]:
        """Each event's record as JSON; the ones that can never be sent are rejected here."""
        shape = self._shape
        if shape is None:
            raise SinkFatalError(self.name, "send() called before open()")
        if self.settings.profile == "openai_solution" and (
            other := next((e for e in batch if e.source_type != "audit_log"), None)
        ):
            raise SinkFatalError(
                self.name,
                f'profile "openai_solution" takes audit-log events only (got {other.source_type}'
                ' records): use profile = "generic" and its table for this source',
            )
        encoded: dict[int, bytes] = {}
        rejections: list[Rejection] = []
        for event in batch:
            try:
                record = shape(event)
                doc = orjson.dumps(record)
            except (TypeError, ValueError) as exc:
                rejections.append(Rejection(event, f"cannot encode as JSON: {redact(str(exc))}"))
                continue
            if len(doc) + 2 > MAX_REQUEST_BYTES:
                rejections.append(
                    Rejection(
                        event,
                        f"the record is {len(doc):,} bytes as JSON: the Logs Ingestion API takes "
                        f"at most 1 MB per request (this sink sends at most {MAX_REQUEST_BYTES:,} "
                        "bytes uncompressed), so this event can never be sent whole",
                    )
                )
                continue
            if fields := oversized_fields(record):
                # Documented: the service keeps the first 64 KB of a longer value, silently.
                self._log.warning("sentinel_field_truncated", event_id=event.id, columns=fields)
            encoded[id(event)] = doc
        return encoded, rejections

    def _attempt(self, items: Sequence[Item], *, quick: bool = False) -> Refused | None:
        payload = b"[" + b",".join(doc for _, doc in items) + b"]"
        response = self._post(payload, policy_of(self.settings, quick=quick))
        self._log.debug("sentinel_request", events=len(items), status=response.status_code)
        return self._verdict(response)

    def _post(
        self,
        payload: bytes,
        policy: RetryPolicy,
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ) -> httpx.Response:
        client = self._client
        if client is None:
            raise SinkFatalError(self.name, "used before open()")
        headers = {"content-type": "application/json", "accept": "application/json"}
        body = encode_body(payload, self.settings.compression, headers)
        self._bearer(policy)  # fetch (or refresh) the token with retries, before the first try

        def build() -> httpx.Request:
            # Each attempt: a token from the credential's cache (renewed when under 5 min),
            # and a request id the operator can find in DCRLogErrors (ClientRequestId).
            attempt_headers = {
                **headers,
                "authorization": "Bearer " + self._token(),
                "x-ms-client-request-id": str(uuid.uuid4()),
            }
            return client.build_request(
                "POST",
                self._url,
                params={"api-version": API_VERSION},
                content=body,
                headers=attempt_headers,
            )

        return send_with_retries(
            client, self.name, policy, build, retry_statuses=retry_statuses, sleep=self._sleep
        )

    def _token(self) -> str:
        if self._credential is None:
            raise SinkFatalError(self.name, "used before open()")
        return auth.token(self._credential, self.settings)

    def _bearer(self, policy: RetryPolicy) -> str:
        """A token, retrying Entra ID's passing failures under the sink's policy."""
        fetch = retrying(
            policy,
            retry_on=lambda exc: isinstance(exc, SinkRetryableError),
            sleep=pause if self._sleep is None else self._sleep,
            before_sleep=lambda state: log_retry(self._log, state),
        )
        token: str = fetch(self._token)
        return token

    def _verdict(self, response: httpx.Response) -> Refused | None:
        status = response.status_code
        if 200 <= status < 300:
            return None
        what = self._what(response)
        if status in (400, 413):
            meaning = (
                " (over the API's 1 MB request limit)"
                if status == 413
                else " (records that do not match the stream's declaration?)"
            )
            return Refused(what + meaning)
        if status in (401, 403, 404):
            raise SinkFatalError(self.name, f"{what}: {self._explain(status)}")
        return Refused(what)

    def _what(self, response: httpx.Response) -> str:
        request_id = response.request.headers.get("x-ms-client-request-id", "")
        return f"{describe(response)} (x-ms-client-request-id {request_id})"

    def _explain(self, status: int) -> str:
        s = self.settings
        who = (
            "the VM/pod's managed identity"
            if s.auth == "managed_identity" and s.client_id is None
            else f"the identity with client id {s.client_id or '(AZURE_CLIENT_ID)'}"
        )
        if status == 401:
            return (
                f"the ingestion endpoint refused the token: its audience must be the endpoint's "
                f"cloud (cloud = {s.cloud!r}, scope {s.token_scope!r}), and the tenant the DCR's"
            )
        if status == 403:
            return (
                f"{who} lacks the role 'Monitoring Metrics Publisher' on the data collection rule "
                f"{s.dcr_immutable_id}: assign it on the DCR (Access control (IAM)); a new "
                "assignment can take up to 30 minutes to apply"
            )
        return (
            f"no stream {s.stream_name!r} in a data collection rule {s.dcr_immutable_id} at "
            f"{s.url}: check dcr_immutable_id (the DCR's overview page), stream (a key of its "
            "streamDeclarations, Custom-..., not the output table) and url (the DCR's logs "
            "ingestion endpoint or a DCE in the DCR's region)"
        )

    # -- check -----------------------------------------------------------------------------
    def probe(self) -> str:
        """Get a token, then POST an empty array: the API answers it without storing anything."""
        self.open()
        self._bearer(PROBE_POLICY)
        try:
            response = self._post(b"[]", PROBE_POLICY, retry_statuses=frozenset())
        except httpx.HTTPError as exc:
            raise SinkRetryableError(
                self.name, f"{type(exc).__name__}: {redact(str(exc))}"
            ) from None
        status = response.status_code
        if status in (401, 403, 404):
            raise SinkFatalError(self.name, f"{self._what(response)}: {self._explain(status)}")
        if not 200 <= status < 300:
            raise SinkRetryableError(
                self.name, f"{self._what(response)}: the ingestion endpoint is not available now"
            )
        return (
            f"token from {self.settings.authority}; {self.settings.stream_name} on "
            f"{self.settings.dcr_immutable_id} accepts this identity (an empty array, answered "
            f"HTTP {status}; whether the table takes the records is seen only after sending)"
        )


class SentinelPlugin:
    settings_model = SentinelSettings

    def create(self, settings: SentinelSettings, context: SinkContext) -> SentinelSink:
        return SentinelSink(settings, context)


plugin = SentinelPlugin()
