"""Elasticsearch / OpenSearch sink: `_bulk` with `create` and `_id` = event id.

Delivery is decided per item. Created (201) and already present (409, from an earlier run) are
delivered, so Elasticsearch never holds a duplicate. 429 and 5xx items are sent again alone, with
backoff; other 4xx items go to the dead-letter file with Elasticsearch's reason. A whole request
refused with 429/5xx/408 is retried; a 413 or 400 is split in halves to find the event behind it
(a refusal no single event explains stops the sink instead of dead-lettering the batch: the
shared rule of `shipper.http.isolate.Evidence`, which item refusals obey too); 401, 403 and 404
stop the sink with what the operator must fix. `send` returns only once every item has an
answer, so `flush` has nothing left to wait for.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import orjson

from shipper.sink_api import (
    RETRYABLE_STATUSES,
    AuditEvent,
    DocumentRenderer,
    Evidence,
    ReceiverFailedError,
    Rejection,
    RetryPolicy,
    SinkContext,
    SinkFatalError,
    SinkRetryableError,
    batches,
    describe,
    document_renderer,
    encode_body,
    log_retry,
    make_client,
    pause,
    policy_of,
    redact,
    retrying,
    send_with_retries,
    sink_logger,
)
from sinks.elasticsearch import probe as elasticsearch_probe
from sinks.elasticsearch.bulk import (
    Entry,
    ItemResult,
    Verdict,
    bulk_body,
    encode_entry,
    fatal_item_message,
    index_missing_message,
    parse_items,
    privilege_message,
    request_error,
)
from sinks.elasticsearch.settings import ElasticsearchSettings, authorization

Sleep = Callable[[float], object]
PROBE_POLICY = RetryPolicy(max_attempts=2, max_time=30.0)
# Whole-request 400/413s one batch may cost while isolating the events behind them. Isolating one
# bad event among 1000 takes about 11; a refusal that is not about any event would refuse every
# event alone, so past this the sink stops instead of dead-lettering the whole batch.
MAX_REFUSALS = 32


class _ItemsPending(Exception):
    """Some items answered 429/5xx (or the answer was unreadable): send those again."""


@dataclass(slots=True)
class _Chunk:
    """One bulk request's worth of events while it is being settled."""

    pending: list[Entry]
    evidence: Evidence[Entry]
    quick: bool = False  # a piece of a failed request: short retries
    created: int = 0
    already_present: int = 0


class ElasticsearchSink:
    def __init__(
        self, settings: ElasticsearchSettings, context: SinkContext, *, sleep: Sleep | None = None
    ) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self._sleep = sleep
        self._policy = policy_of(settings)
        self._base = settings.url.rstrip("/")
        self._params = {"pipeline": settings.pipeline} if settings.pipeline else {}
        self._client: httpx.Client | None = None
        self._auth: dict[str, str] = {}
        self._render: DocumentRenderer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> None:
        if self._client is not None:
            return
        try:
            self._render = document_renderer(self.settings.format)
        except (ImportError, ValueError) as exc:
            raise SinkFatalError(self.name, f"format {self.settings.format!r}: {exc}") from None
        self._auth = authorization(self.settings)
        try:
            self._client = make_client(self.settings)
        except (OSError, ssl.SSLError) as exc:
            raise SinkFatalError(self.name, f"cannot set up TLS: {exc}") from None

    def flush(self) -> None:
        """Nothing to wait for: `send` returns only after Elasticsearch answered for every item."""

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def probe(self) -> str:
        self.open()
        return elasticsearch_probe.probe(self.name, self.settings.index, self._request)

    # -- delivery --------------------------------------------------------------------------
    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        entries, rejected = self._encode(batch)
        ranges = batches(
            [entry.event for entry in entries],
            [entry.lines for entry in entries],
            max_events=self.settings.batch_max_events,
            max_bytes=self.settings.batch_max_bytes,
        )
        evidence: Evidence[Entry] = Evidence(self.name, max_refusals=MAX_REFUSALS)
        chunks = []
        for start, end in ranges:
            evidence.begin(end - start)
            chunks.append(self._deliver(entries[start:end], evidence))
        rejected.extend(Rejection(entry.event, reason) for entry, reason in evidence.verdict())
        self._log.info(
            "elasticsearch_batch",
            index=self.settings.index,
            events=len(batch),
            requests=len(ranges),
            created=sum(c.created for c in chunks),
            already_present=sum(c.already_present for c in chunks),
            rejected=len(rejected),
        )
        return rejected

    def _encode(self, batch: Sequence[AuditEvent]) -> tuple[list[Entry], list[Rejection]]:
        if self._render is None:
            raise SinkFatalError(self.name, "send() called before open()")
        entries: list[Entry] = []
        rejected: list[Rejection] = []
        for event in batch:
            try:
                entries.append(encode_entry(event, self._render, self.settings.index))
            except (orjson.JSONEncodeError, TypeError, ValueError) as exc:
                rejected.append(Rejection(event, f"cannot encode as JSON: {redact(str(exc))}"))
        return entries, rejected

    def _deliver(
        self, entries: list[Entry], evidence: Evidence[Entry], *, quick: bool = False
    ) -> _Chunk:
        """Send one chunk until every item is settled; retries only what is still pending."""
        chunk = _Chunk(pending=entries, evidence=evidence, quick=quick)

        def attempt() -> None:
            try:
                response = self._post(chunk.pending, quick=chunk.quick)
            except ReceiverFailedError as exc:  # 5xx after retries: an outage, or one event
                self._isolate(chunk, str(exc))
                return
            if response.status_code == 200:
                self._settle(chunk, response)
            else:
                self._refused(chunk, response)

        until_settled = retrying(
            self._policy,
            retry_on=lambda exc: isinstance(exc, _ItemsPending),
            sleep=pause if self._sleep is None else self._sleep,
            before_sleep=lambda state: log_retry(self._log, state),
        )
        try:
            until_settled(attempt)
        except _ItemsPending as exc:
            raise SinkRetryableError(
                self.name, f"{len(chunk.pending)} events still refused after retries: {exc}"
            ) from None
        return chunk

    def _settle(self, chunk: _Chunk, response: httpx.Response) -> None:
        results = parse_items(response.content, len(chunk.pending))
        if results is None:
            raise _ItemsPending(f"unreadable bulk answer: {describe(response)}")
        retry: list[tuple[Entry, ItemResult]] = []
        accepted: list[Entry] = []
        for entry, result in zip(chunk.pending, results, strict=True):
            if result.verdict is Verdict.CREATED:
                chunk.created += 1
                accepted.append(entry)
            elif result.verdict is Verdict.ALREADY_PRESENT:
                chunk.already_present += 1
                accepted.append(entry)
            elif result.verdict is Verdict.REJECT:
                chunk.evidence.suspect(entry, f"Elasticsearch: {result.summary}")
            elif result.verdict is Verdict.RETRY:
                retry.append((entry, result))
            else:
                message = fatal_item_message(result, self.settings.index, self.settings.pipeline)
                raise SinkFatalError(self.name, message)
        if accepted:
            chunk.evidence.accept(accepted)
        chunk.pending = [entry for entry, _ in retry]
        if retry:
            raise _ItemsPending(f"{len(retry)} items refused for now, e.g. {retry[0][1].summary}")

    def _refused(self, chunk: _Chunk, response: httpx.Response) -> None:
        """A whole-request answer other than 200 (retryable ones were retried already)."""
        status, error = response.status_code, request_error(response.content)
        if status == 413 or (status == 400 and error is not None):
            what = " (too large for http.max_content_length)" if status == 413 else ""
            self._isolate(chunk, f"Elasticsearch refused the request: {describe(response)}{what}")
            return
        if status == 401:
            meaning = elasticsearch_probe.WRONG_CREDENTIALS
        elif status == 403:
            meaning = privilege_message(self.settings.index)
        elif status == 404 and error is not None and error[0] == "index_not_found_exception":
            meaning = index_missing_message(self.settings.index)
        else:
            meaning = f"unexpected answer from {self._base}/_bulk; is url the cluster's address?"
        raise SinkFatalError(self.name, f"{describe(response)}: {meaning}")

    def _isolate(self, chunk: _Chunk, reason: str) -> None:
        """Split a refused or failing request (413 too big, 400 bad, 5xx every time) until the
        trouble follows single events; `Evidence` decides whether it is about them at all."""
        entries, chunk.pending = chunk.pending, []
        chunk.evidence.refuse(reason)
        if len(entries) == 1:
            chunk.evidence.suspect(entries[0], reason)
            return
        middle = len(entries) // 2
        halves = (entries[:middle], entries[middle:])
        for half in (self._deliver(part, chunk.evidence, quick=True) for part in halves):
            chunk.created += half.created
            chunk.already_present += half.already_present

    # -- HTTP ------------------------------------------------------------------------------
    def _post(self, entries: Sequence[Entry], *, quick: bool = False) -> httpx.Response:
        headers = {"content-type": "application/x-ndjson", "accept": "application/json"}
        content = encode_body(bulk_body(entries), self.settings.compression, headers)
        policy = policy_of(self.settings, quick=True) if quick else self._policy
        return self._send("POST", "/_bulk", content, headers, policy=policy)

    def _request(self, method: str, path: str, body: bytes | None) -> httpx.Response:
        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = "application/json"
        # A check answers at once: only connection failures are retried, statuses are reported.
        return self._send(
            method, path, body, headers, policy=PROBE_POLICY, retry_statuses=frozenset()
        )

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
        client = self._client
        if client is None:
            raise SinkFatalError(self.name, "used before open()")
        headers = {**headers, **self._auth}
        params = self._params if path == "/_bulk" else {}

        def build() -> httpx.Request:
            return client.build_request(
                method, self._base + path, params=params, headers=headers, content=content
            )

        try:
            return send_with_retries(
                client, self.name, policy, build, retry_statuses=retry_statuses, sleep=self._sleep
            )
        except httpx.HTTPError as exc:  # not a transport error (those are retried): e.g. decoding
            raise SinkRetryableError(
                self.name, f"{type(exc).__name__}: {redact(str(exc))}"
            ) from None


class ElasticsearchPlugin:
    settings_model = ElasticsearchSettings

    def create(self, settings: ElasticsearchSettings, context: SinkContext) -> ElasticsearchSink:
        return ElasticsearchSink(settings, context)


plugin = ElasticsearchPlugin()
