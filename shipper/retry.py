"""Retry policy shared by the API client and every sink.

Exponential backoff with full jitter, bounded in attempts and in total time, and a server's
`Retry-After` honoured (as a floor, capped so a hostile or broken header cannot park us forever).
`sleep` is injectable so tests never wait; by default it is `shipper.runtime.stopping.pause`, so a stop
request ends a back-off at once (`Interrupted`) instead of waiting it out.

Which HTTP statuses are worth another attempt is decided here, once (`RETRYABLE_HTTP_STATUSES`);
the source and each sink state their exceptions as a difference from it (`retryable_statuses`).
Every scheduled retry writes the same log line (`log_retry`: event `retrying`).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from shipper.errors import RetryableResponseError
from shipper.runtime import stopping
from shipper.secrets import redact

if TYPE_CHECKING:
    from shipper.runtime.metrics import Metrics

MAX_RETRY_AFTER = 300.0

# The one table of HTTP answers that a later attempt may fare better with, whoever asks: the
# status, and why. Everything else is an answer about the request itself (or a redirect, which
# is never followed), so repeating it cannot help. 409 Conflict is not here: in general it says
# the request conflicts with the resource's state, which the same request meets again. The
# audit-log source adds it (OpenAI documents 409 for a conflicting concurrent request, which
# passes); no sink does (Elasticsearch's per-item 409 on `create` means "already stored", i.e.
# delivered; a webhook receiver or Splunk HEC answering 409 means the content conflicts).
RETRYABLE_HTTP_STATUSES: Mapping[int, str] = {
    408: "Request Timeout: the server gave up waiting for the request; a new one may be on time",
    429: "Too Many Requests: rate limited; wait (at least Retry-After) and ask again",
    500: "Internal Server Error: a fault on the server's side, most often passing",
    502: "Bad Gateway: a proxy or load balancer could not reach the server behind it",
    503: "Service Unavailable: overloaded, starting or in maintenance (often with Retry-After)",
    504: "Gateway Timeout: the server behind a proxy did not answer in time",
}
RETRYABLE_STATUSES = frozenset(RETRYABLE_HTTP_STATUSES)
# Every 5xx, for the parties that take any server error as passing (see their exceptions).
SERVER_ERRORS = frozenset(range(500, 600))


def retryable_statuses(*, add: Iterable[int] = (), remove: Iterable[int] = ()) -> frozenset[int]:
    """The table's statuses with one party's exceptions: `add` retries more, `remove` fewer.

    Each party comments its exceptions where it states them; `remove` must name statuses the
    table has, so an exception never silently stops meaning anything.
    """
    removed = frozenset(remove)
    if stray := sorted(removed - RETRYABLE_STATUSES):
        raise ValueError(f"cannot remove {stray}: not in RETRYABLE_HTTP_STATUSES")
    return (RETRYABLE_STATUSES | frozenset(add)) - removed


def is_retryable(status: int, statuses: frozenset[int] = RETRYABLE_STATUSES) -> bool:
    """Whether an answer with `status` is tried again (per the table, or a party's own set)."""
    return status in statuses


RETRY_EVENT = "retrying"


def log_retry(logger: Any, state: RetryCallState, reason: str | None = None) -> None:
    """The one line every scheduled retry writes, wherever it happens: event `retrying` with
    `attempt` (the one that failed), `wait` (seconds until the next) and `reason` (redacted).

    `logger` is bound once to its source or sink, so the line also carries `component`.
    `reason` defaults to the exception that failed the attempt.
    """
    if reason is None:
        exc = state.outcome.exception() if state.outcome else None
        reason = (str(exc) or type(exc).__name__) if exc is not None else "unknown"
    wait = state.next_action.sleep if state.next_action is not None else None
    logger.warning(
        RETRY_EVENT,
        attempt=state.attempt_number,
        wait=None if wait is None else round(float(wait), 3),
        reason=redact(reason),
    )


def note_source_retry(
    logger: Any, state: RetryCallState, metrics: Metrics | None, source: str
) -> None:
    """A source's request is retried: counted by cause (`shipper_api_retries`) and logged."""
    exc = state.outcome.exception() if state.outcome else None
    if metrics is not None:
        cause = exc.cause if isinstance(exc, RetryableResponseError) else "other"
        metrics.retries.labels(source, cause).inc()
    log_retry(logger, state)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    delay = when.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    max_time: float = 300.0
    initial: float = 0.5
    maximum: float = 30.0


class _WaitHonouringRetryAfter:
    """Full-jitter exponential backoff, but never shorter than the server's `Retry-After`."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._jitter = wait_random_exponential(multiplier=policy.initial, max=policy.maximum)

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._jitter(state))
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if isinstance(retry_after, int | float) and retry_after > backoff:
            return float(retry_after)
        return backoff


def retrying(
    policy: RetryPolicy,
    *,
    retry_on: Callable[[BaseException], bool],
    sleep: Callable[[float], Any] = stopping.pause,
    before_sleep: Callable[[RetryCallState], Any] | None = None,
) -> Retrying:
    """A tenacity `Retrying` for `policy`; re-raises the last exception when it gives up."""
    return Retrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_after_delay(policy.max_time),
        wait=_WaitHonouringRetryAfter(policy),
        retry=retry_if_exception(retry_on),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
