"""The audit-log API client: one page with retries, one closed time window completely.

Correctness never depends on the API's sort order: a window `[start, end)` is paged with
`after=<last_id>` until `has_more` is false, de-duplicated by id, and sorted by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from pydantic import SecretStr
from tenacity import RetryCallState

from shipper.config import SourceSettings
from shipper.errors import (
    RetryableResponseError,
    SourceError,
    SourceRefusedError,
    SourceUnavailableError,
)
from shipper.metrics import Metrics
from shipper.model import AuditEvent
from shipper.retry import RetryPolicy, parse_retry_after, retrying
from shipper.secrets import redact
from shipper.source_parse import Page, error_message, parse_page

log = structlog.get_logger("shipper.source")

RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
PATH = "/organization/audit_logs"
MAX_PAGES_PER_WINDOW = 100_000

Params = list[tuple[str, str]]


class WindowOverflowError(Exception):
    """A window holds more events than the caller allowed; split it and try again."""


def _refusal(status: int, api_message: str | None, settings: SourceSettings) -> str:
    detail = f" The API said: {redact(api_message)}" if api_message else ""
    where = f"file {settings.api_key_file}" if settings.api_key_file else f"${settings.api_key_env}"
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
    """Reads `GET /organization/audit_logs`; translates every failure into the shipper error tree."""

    def __init__(
        self,
        settings: SourceSettings,
        api_key: SecretStr,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], Any] = time.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._sleep = sleep
        self._policy = RetryPolicy(
            max_attempts=settings.retry_max_attempts, max_time=settings.retry_max_time
        )
        self._http = httpx.Client(
            base_url=settings.base_url.rstrip("/"),
            headers={
                "authorization": f"Bearer {api_key.get_secret_value()}",
                "user-agent": "shipper/0.1",
            },
            timeout=httpx.Timeout(settings.request_timeout),
            follow_redirects=False,
            transport=transport,
            limits=httpx.Limits(max_connections=settings.concurrency + 2),
        )
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._http.close()

    def _filters(self) -> Params:
        s = self.settings
        params: Params = []
        for key, values in (
            ("project_ids[]", s.project_ids),
            ("event_types[]", s.event_types),
            ("actor_ids[]", s.actor_ids),
            ("actor_emails[]", s.actor_emails),
            ("resource_ids[]", s.resource_ids),
        ):
            params.extend((key, v) for v in values)
        return params

    def _attempt(self, params: Params) -> Page:
        self.requests += 1
        try:
            response = self._http.get(PATH, params=tuple(params))
        except httpx.TransportError as exc:
            raise RetryableResponseError(
                f"{type(exc).__name__}: {redact(str(exc)) or 'no detail'}"
            ) from None
        request_id = response.headers.get("x-request-id")
        status = response.status_code
        if status in RETRYABLE_STATUSES:
            raise RetryableResponseError(
                f"HTTP {status}" + (f" (x-request-id {request_id})" if request_id else ""),
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                cause=f"http_{status}",
            )
        if status != 200:
            raise SourceRefusedError(
                _refusal(status, error_message(response.content), self.settings),
                status=status,
                request_id=request_id,
            )
        try:
            return parse_page(response.content)
        except RetryableResponseError as exc:
            raise RetryableResponseError(
                f"{exc}" + (f" (x-request-id {request_id})" if request_id else "")
            ) from None

    def _note_retry(self, state: RetryCallState) -> None:
        self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        if self.metrics is not None:
            cause = exc.cause if isinstance(exc, RetryableResponseError) else "other"
            self.metrics.retries.labels(self.settings.name, cause).inc()
        log.warning(
            "api_retry", source=self.settings.name, attempt=state.attempt_number, reason=str(exc)
        )

    def page(self, params: Params) -> Page:
        """One page, retried per the policy; `SourceUnavailableError` once it is exhausted."""
        retry = retrying(
            self._policy,
            retry_on=lambda exc: isinstance(exc, RetryableResponseError),
            sleep=self._sleep,
            before_sleep=self._note_retry,
        )
        try:
            return retry(self._attempt, params)
        except RetryableResponseError as exc:
            raise SourceUnavailableError(
                f"the audit-log API kept failing; last error: {exc}"
            ) from None

    def fetch_pass(
        self, start: int, end: int, *, tenant_only: bool, limit: int | None = None
    ) -> dict[str, dict[str, Any]]:
        """Every event with start <= effective_at < end in one pass, by id."""
        base: Params = [
            ("effective_at[gte]", str(start)),
            ("effective_at[lt]", str(end)),
            ("limit", str(self.settings.page_size)),
            *self._filters(),
        ]
        if tenant_only:
            base.append(("tenant_only", "true"))
        found: dict[str, dict[str, Any]] = {}
        after: str | None = None
        used_cursors: set[str] = set()
        for _ in range(MAX_PAGES_PER_WINDOW):
            page = self.page(base + ([("after", after)] if after else []))
            for obj in page.data:
                found[obj["id"]] = obj
            if limit is not None and len(found) > limit:
                raise WindowOverflowError(f"more than {limit} events in [{start}, {end})")
            if not page.has_more:
                return found
            if page.last_id in used_cursors:
                raise SourceUnavailableError(
                    f"the API repeated cursor {page.last_id!r} while listing [{start}, {end}): "
                    "paging would never end"
                )
            assert page.last_id is not None  # parse_page guarantees it when has_more
            used_cursors.add(page.last_id)
            after = page.last_id
        raise SourceError(f"more than {MAX_PAGES_PER_WINDOW} pages in one window")

    def fetch_window(
        self, start: int, end: int, *, organization: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        """All events of `[start, end)` from both passes, sorted oldest first by (effective_at, id)."""
        found = self.fetch_pass(start, end, tenant_only=False, limit=limit)
        if self.settings.include_tenant_events:
            remaining = None if limit is None else max(limit - len(found), 0)
            found.update(self.fetch_pass(start, end, tenant_only=True, limit=remaining))
        events = []
        for obj in found.values():
            try:
                events.append(AuditEvent.from_api(obj, organization))
            except ValueError as exc:
                raise SourceUnavailableError(f"the API returned an unusable event: {exc}") from None
        events.sort(key=lambda e: (e.effective_at, e.id))
        return events
