"""The audit-log API client: one page with retries, one closed time window completely.

Correctness never depends on the API's sort order: a window `[start, end)` is paged with
`after=<last_id>` until `has_more` is false, de-duplicated by id, and sorted (`assemble`).
A window is read in two passes (ordinary and `tenant_only`), which a caller may run at once.
An entry of a page that is not a readable event goes to the source's quarantine before the
window is handed on (`shipper/quarantine.py`); the page's other events are kept.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from pydantic import SecretStr
from tenacity import RetryCallState

from shipper.config.secret_ref import source_section
from shipper.config.settings import AuditLogSettings, SourceSettings
from shipper.errors import (
    RetryableResponseError,
    SourceError,
    SourceRefusedError,
    SourceUnavailableError,
)
from shipper.model.event import AuditEvent
from shipper.pipeline.windows import Found, WindowOverflowError, assemble, overflow_error
from shipper.retry import (
    RetryPolicy,
    note_source_retry,
    parse_retry_after,
    retryable_statuses,
    retrying,
)
from shipper.runtime import stopping
from shipper.runtime.logs import source_logger
from shipper.runtime.metrics import Metrics
from shipper.secrets import redact
from shipper.source.api_get import Getter, HttpxGetter, TransportFailure
from shipper.source.audit_log.event_types import split_by_scope, unknown_event_types
from shipper.source.audit_log.parse import Page, error_message, parse_page
from shipper.source.inflight import Answer, InFlightLimit, RetryAfterGate
from shipper.source.quarantine import Listed, Quarantine

# The shared table (`shipper.retry`) plus 409: OpenAI documents 409 for a request that conflicts
# with a concurrent one, which passes once the other is done.
RETRYABLE_STATUSES = retryable_statuses(add={409})
# Answers (both retried) by which the API, or what is in front of it, asks for less load.
PUSH_BACK = frozenset({429, 503})
PATH = "/organization/audit_logs"
MAX_PAGES_PER_WINDOW = 100_000
# Pages in a row that add nothing new while `has_more` stays true: the API is paging in circles.
MAX_BARREN_PAGES = 3

# A request that costs the API next to nothing: a one-second window at the epoch, always empty.
CLOCK_PROBE = (("effective_at[gte]", "0"), ("effective_at[lt]", "1"), ("limit", "1"))
CLOCK_SKEW_WARNING = 10.0  # seconds; the Date header's own resolution is one

Params = list[tuple[str, str]]


def _refusal(status: int, api_message: str | None, settings: AuditLogSettings) -> str:
    detail = f" The API said: {redact(api_message)}" if api_message else ""
    ref = settings.api_key
    where = f"file {ref.file}" if ref.file else f"${ref.env}"
    if status == 401:
        return f"HTTP 401: the admin key was rejected: it is wrong, revoked or not an admin key (from {where}).{detail}"
    if status == 403:
        return (
            "HTTP 403: the key may not read the audit log: it lacks the audit-log permission "
            "(api.audit_logs.read), or audit logging is not enabled for the organization "
            f"(enable it in the Organization Settings, Data controls).{detail}"
        )
    if status == 404:
        return f"HTTP 404: {settings.base_url}{PATH} does not exist: check source.base_url.{detail}"
    return f"HTTP {status}: the API refused the request: check the [source] filters.{detail}"


class AuditLogClient:
    """Reads `GET /organization/audit_logs`; translates every failure into the shipper error tree.

    The audit-log implementation of the source contract (`shipper.source.contract.Source`); its
    passes are the values of `tenant_only`, its emulator `shipper.emulator.Emulator`.
    """

    def __init__(
        self,
        settings: AuditLogSettings,
        api_key: SecretStr,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = stopping.pause,
        metrics: Metrics | None = None,
        quarantine: Quarantine | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._log = source_logger(settings.name)
        # Where unreadable entries are kept (the app sets it; None: logged, not kept).
        self.quarantine = quarantine
        self.spool_dir: Path | None = None  # the audit log keeps nothing on disk
        self._sleep = sleep
        self._policy = RetryPolicy(
            max_attempts=settings.retry_max_attempts, max_time=settings.retry_max_time
        )
        headers = {
            "authorization": f"Bearer {api_key.get_secret_value()}",
            "user-agent": "shipper/0.1",
        }
        base_url, timeout = settings.base_url.rstrip("/"), settings.request_timeout
        observe = metrics.api_request_observer(settings.name) if metrics is not None else None
        self._http: Getter = HttpxGetter(
            base_url,
            headers,
            timeout,
            connections=settings.concurrency + 2,  # a spare for a request being torn down
            transport=transport,
            observe=observe,
            deadline=settings.request_deadline,
            max_body=settings.max_response_bytes,
        )
        # `concurrency` bounds the requests in flight, whatever the number of passes waiting;
        # fewer while the API pushes back.
        self._in_flight = InFlightLimit(settings.concurrency)
        if metrics is not None:
            metrics.requests_allowed.labels(settings.name).set(settings.concurrency)
        # A Retry-After holds back every fetch thread, not only the one that was told.
        self._gate = RetryAfterGate(sleep)
        self.requests = 0
        self.retries = 0
        # The event-type filter split by scope: each pass may only ask for types of its own.
        self._types = split_by_scope(settings.event_types)
        # The API's clock minus the local one, from the latest answer's Date; and the latest
        # Date parsed (pages come several a second, most with the same Date).
        self._api_offset: float | None = None
        self._last_date: tuple[str, float] = ("", 0.0)
        self._tenant_refused = False
        if unknown := unknown_event_types(settings.event_types):
            self._log.warning(
                "event_types_unknown",
                unknown=unknown,
                meaning="not in the event-type catalog (a typo, or a type newer than this "
                "shipper); asked for anyway: tenant.* in the tenant_only pass, others in the "
                "ordinary pass",
            )

    @property
    def passes(self) -> tuple[bool, ...]:
        """The `tenant_only` values of the passes that make a window complete.

        A pass is made only when it has something to ask: with an event-type filter, the
        ordinary pass only for ordinary types, the `tenant_only` pass only for tenant-scoped
        ones (the API refuses either mix). The tenant pass is dropped once the API refused
        `tenant_only` itself (see `fetch_pass`).
        """
        filtered = bool(self.settings.event_types)
        ordinary, tenant = self._types
        tenant_wanted = self.settings.include_tenant_events and not self._tenant_refused
        return (
            *((False,) if ordinary or not filtered else ()),
            *((True,) if tenant_wanted and (tenant or not filtered) else ()),
        )

    def close(self) -> None:
        self._http.close()

    def _filters(self, tenant_only: bool = False) -> Params:
        """The configured filters for one pass: only the event types of that pass's scope."""
        s = self.settings
        params: Params = []
        for key, values in (
            ("project_ids[]", s.project_ids),
            ("event_types[]", self._types[1] if tenant_only else self._types[0]),
            ("actor_ids[]", s.actor_ids),
            ("actor_emails[]", s.actor_emails),
            ("resource_ids[]", s.resource_ids),
        ):
            params.extend((key, v) for v in values)
        return params

    def _attempt(self, params: Params, organization: str | None = None) -> Page:
        self._gate.hold_back()
        self.requests += 1
        target = f"{PATH}?{urlencode(params)}"
        ticket, status = self._in_flight.acquire(), 0
        try:
            response = self._http.get(target)
            status = response.status
        except TransportFailure as exc:
            raise RetryableResponseError(redact(str(exc)) or "no detail", cause=exc.cause) from None
        finally:
            self._answered(ticket, status)
        self._note_date(response.headers.get("date"))
        request_id = response.headers.get("x-request-id")
        if status in RETRYABLE_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            self._gate.pause(retry_after)
            raise RetryableResponseError(
                f"HTTP {status}" + (f" (x-request-id {request_id})" if request_id else ""),
                retry_after=retry_after,
                cause=f"http_{status}",
            )
        if status != 200:
            raise SourceRefusedError(
                _refusal(status, error_message(response.body), self.settings),
                status=status,
                request_id=request_id,
            )
        try:
            page = parse_page(response.body, organization)
        except RetryableResponseError as exc:
            raise RetryableResponseError(
                f"{exc}" + (f" (x-request-id {request_id})" if request_id else "")
            ) from None
        return replace(page, request_id=request_id)

    def _note_date(self, date: str | None) -> None:
        """Record the API's clock from an answer's `Date`, as an offset from the local clock.

        A Date is whole seconds, cut down: the offset errs towards an API clock that is behind,
        the safe side for `api_clock_offset`'s caller, which must never read past it.
        """
        received = time.time()
        if not date:
            return
        if date == self._last_date[0]:
            api = self._last_date[1]
        else:
            try:
                when = parsedate_to_datetime(date)
            except (TypeError, ValueError, IndexError):
                return
            api = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()
            self._last_date = (date, api)
        self._api_offset = api - received

    def final_until(self, since: int) -> int | None:
        """No watermark: the audit log lists events as they happen, bounded by its clock."""
        return None

    def api_clock_offset(self) -> float | None:
        """The API's clock minus the local one (seconds), from the `Date` of one answer given
        now: a cheap request (`CLOCK_PROBE`), so a cycle learns the API's time before it plans
        its first window (an offset from an earlier cycle would hide a local clock that jumped
        since). None when the API (or a proxy) sends no usable Date: the local clock alone then.
        Exports the skew (local minus API) and warns when it is large.
        """
        self._api_offset = None
        self.page(list(CLOCK_PROBE))
        offset = self._api_offset
        if offset is None:
            self._log.warning(
                "api_date_missing",
                meaning="the API's answer has no usable Date header, so the local clock alone "
                "bounds each cycle: keep it synchronised (NTP)",
            )
            return None
        skew = -offset
        if self.metrics is not None:
            self.metrics.clock_skew.labels(self.settings.name).set(skew)
        if abs(skew) > CLOCK_SKEW_WARNING:
            self._log.warning(
                "clock_skew",
                skew_seconds=round(skew, 1),
                meaning="this machine's clock is off the API's (its Date header) by more than "
                f"{CLOCK_SKEW_WARNING:g} s: NTP is required. Cycles read only up to the earlier "
                "of the two clocks, so nothing is skipped, but lag and lateness figures are off",
            )
        return offset

    def _answered(self, ticket: int, status: int) -> None:
        """Hand back a request's slot; say so when the API made the window narrower or wider."""
        answer: Answer = (
            "pushed_back" if status in PUSH_BACK else "accepted" if status == 200 else "other"
        )
        before, width = self._in_flight.release(ticket, answer)
        if width == before:
            return
        if self.metrics is not None:
            self.metrics.requests_allowed.labels(self.settings.name).set(width)
        if width < before:
            self._log.warning(
                "api_concurrency_lowered",
                requests_in_flight=width,
                concurrency=self.settings.concurrency,
                reason=f"HTTP {status}: the API asks for fewer requests at once",
            )
        elif width == self.settings.concurrency:
            self._log.info("api_concurrency_restored", requests_in_flight=width)

    def _note_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        note_source_retry(self._log, state, self.metrics, self.settings.name)

    def page(self, params: Params, organization: str | None = None) -> Page:
        """One page, retried per the policy; `SourceUnavailableError` once it is exhausted."""
        retry = retrying(
            self._policy,
            retry_on=lambda exc: isinstance(exc, RetryableResponseError),
            sleep=self._sleep,
            before_sleep=self._note_retry,
        )
        try:
            return retry(self._attempt, params, organization)
        except RetryableResponseError as exc:
            raise SourceUnavailableError(
                f"the audit-log API kept failing; last error: {exc}"
            ) from None

    def probe(self) -> str:
        """For `shipper check`: the first page of the last hour, which needs a valid admin key."""
        now = int(time.time())
        page = self.page([("effective_at[gte]", str(now - 3600)), ("limit", "1")])
        return f"reachable, key accepted ({len(page.events)} event(s) in the last hour on page 1)"

    def _crowded(self, first_page: list[AuditEvent], span: int, limit: float) -> bool:
        """Whether a window's first page is so dense that its pass must hold over `limit`.

        Only a hint for planning (a wrong guess costs a split, never an event): pages come in
        time order from the API, so a full first page spanning a sliver of the window foretells
        an overflow. Giving up after one page spares reading `limit` events only to drop them.
        """
        if span <= 1 or len(first_page) < self.settings.page_size:
            return False
        times = [event.effective_at for event in first_page]
        spread = max(max(times) - min(times), 1)
        return len(first_page) * span / spread > limit

    def fetch_pass(
        self,
        start: int,
        end: int,
        tenant_only: bool,
        *,
        limit: int | None = None,
        organization: str | None = None,
        sharing: int = 1,
        abandon: threading.Event | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Found:
        """Every event with start <= effective_at < end in one pass, by id.

        Events are kept as their JSON bytes page by page, so a pass holds one page of decoded
        dicts at a time. Past `limit` events (or when the first page foretells it, `sharing`
        passes counted as dense as this one) it raises `WindowOverflowError` and sets `abandon`,
        which makes the window's other passes give up too, before their next page.
        """
        try:
            return self._read_pass(
                start,
                end,
                tenant_only=tenant_only,
                limit=limit,
                organization=organization,
                sharing=sharing,
                abandon=abandon,
            )
        except WindowOverflowError:
            if abandon is not None:
                abandon.set()
            raise
        except SourceRefusedError as exc:
            if not (tenant_only and self._refuses_tenant_only(exc)):
                raise
            return Found()

    def stream_pass(
        self,
        start: int,
        end: int,
        tenant_only: bool,
        /,
        *,
        batch: int,
        organization: str | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Iterator[Found]:
        """One pass of a one-second window, as one batch: a second of an organization's audit
        log (admin actions) is never more than memory holds."""
        yield self.fetch_pass(start, end, tenant_only, organization=organization)

    def _refuses_tenant_only(self, exc: SourceRefusedError) -> bool:
        """Whether a refusal of the tenant pass is about `tenant_only` itself (the organization
        or API does not offer it), not about the filters; if so, the pass is dropped for good
        with a loud error, so the ordinary pass keeps being delivered instead of failing every
        run. Not when the filter asks for tenant-scoped types only: nothing would be left."""
        text = str(exc)
        if exc.status != 400 or "tenant_only" not in text or "event_type" in text:
            return False
        if self.settings.event_types and not self._types[0]:
            return False
        if not self._tenant_refused:
            self._tenant_refused = True
            self._log.error(
                "tenant_pass_refused",
                error=text,
                meaning="the API refuses tenant_only=true for this organization: tenant-scoped "
                "events (tenant.*, role bindings) are NOT delivered; the ordinary events are. "
                "Set include_tenant_events = false to accept that and silence this.",
            )
        return True

    def _read_pass(
        self,
        start: int,
        end: int,
        *,
        tenant_only: bool,
        limit: int | None,
        organization: str | None,
        sharing: int,
        abandon: threading.Event | None,
    ) -> Found:
        base: Params = [
            ("effective_at[gte]", str(start)),
            ("effective_at[lt]", str(end)),
            ("limit", str(self.settings.page_size)),
            *self._filters(tenant_only),
        ]
        if tenant_only:
            base.append(("tenant_only", "true"))
        found = Found()
        after: str | None = None
        used_cursors: set[str] = set()
        unreadable: set[bytes] = set()  # the pass's unreadable entries, as sent
        barren = 0
        for _ in range(MAX_PAGES_PER_WINDOW):
            if abandon is not None and abandon.is_set():
                raise WindowOverflowError("another pass of the window overflowed", len(found))
            page = self.page(base + ([("after", after)] if after else []), organization)
            before, outside = len(found) + len(unreadable), 0
            for event in page.events:
                found[event.id] = event
                if not start <= event.effective_at < end:
                    outside += 1
            if outside:
                self._note_outside(page, outside, start, end, tenant_only)
            if page.defects:
                self._keep_defects(page, Listed(start, end, tenant_only, page.request_id))
                unreadable.update(defect.raw for defect in page.defects)
            if limit is not None and len(found) > limit:
                raise overflow_error(f"more than {limit} events in [{start}, {end})", found)
            if (
                after is None
                and limit is not None
                and self._crowded(page.events, end - start, limit / sharing)
            ):
                raise overflow_error(
                    f"on course for more than {limit} events in [{start}, {end})", found
                )
            if not page.has_more:
                return found
            barren = 0 if len(found) + len(unreadable) > before else barren + 1
            if barren >= MAX_BARREN_PAGES:
                raise SourceUnavailableError(
                    f"the API answered {barren} pages in a row with nothing new and has_more "
                    f"still true while listing [{start}, {end}) (tenant_only={tenant_only}): "
                    "paging would never end; an API anomaly, tried again next cycle",
                    request_id=page.request_id,
                )
            if page.last_id in used_cursors:
                raise SourceUnavailableError(
                    f"the API repeated cursor {page.last_id!r} while listing [{start}, {end}): "
                    "paging would never end"
                )
            assert page.last_id is not None  # parse_page guarantees it when has_more
            used_cursors.add(page.last_id)
            after = page.last_id
        raise SourceError(f"more than {MAX_PAGES_PER_WINDOW} pages in one window")

    def _keep_defects(self, page: Page, listed: Listed) -> None:
        """Quarantine a page's unreadable entries (durably, before its window is delivered)."""
        if self.quarantine is not None:
            try:
                self.quarantine.keep(page.defects, listed)
            except OSError as exc:  # the window must not be delivered past entries not kept
                raise SourceUnavailableError(
                    f"cannot keep {len(page.defects)} unreadable entries in "
                    f"{self.quarantine.path}: {exc.strerror or exc}; the window "
                    f"[{listed.start}, {listed.end}) is not delivered until they are kept"
                ) from None
            return
        self._log.error(
            "entries_unreadable",
            window=[listed.start, listed.end],
            tenant_only=listed.tenant_only,
            request_id=listed.request_id,
            ids=[d.id for d in page.defects],
            reasons=sorted({d.reason for d in page.defects}),
            meaning="no quarantine configured: these entries are not kept",
        )

    def _note_outside(
        self, page: Page, count: int, start: int, end: int, tenant_only: bool
    ) -> None:
        """Events the API returned outside the window asked for: delivered, and counted."""
        if self.metrics is not None:
            self.metrics.outside_window.labels(self.settings.name).inc(count)
        self._log.warning(
            "events_outside_window",
            count=count,
            window=[start, end],
            tenant_only=tenant_only,
            example=next(e.id for e in page.events if not start <= e.effective_at < end),
            meaning="the API returned events outside the effective_at range asked for; "
            "they are delivered all the same",
        )

    def fetch_window(
        self, start: int, end: int, *, organization: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        """All events of `[start, end)` from every pass in turn, sorted oldest first by (effective_at, id)."""
        found = Found()
        for index, tenant_only in enumerate(self.passes):
            remaining = None if limit is None else max(limit - len(found), 0)
            found.update(
                self.fetch_pass(
                    start,
                    end,
                    tenant_only=tenant_only,
                    limit=remaining,
                    organization=organization,
                    sharing=len(self.passes) - index,
                )
            )
        return assemble([found], limit)


def admin_key_client(settings: SourceSettings, metrics: Metrics | None = None) -> AuditLogClient:
    """The audit-log source of `[source] type = "audit_log"`, with the admin key it names."""
    if not isinstance(settings, AuditLogSettings):
        raise TypeError(f"not audit-log settings: type {settings.type!r}")
    key = settings.api_key.read(source_section(settings.name))
    return AuditLogClient(settings, key, metrics=metrics)
