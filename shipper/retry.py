"""Retry policy shared by the API client and every sink.

Exponential backoff with full jitter, bounded in attempts and in total time, and a server's
`Retry-After` honoured (as a floor, capped so a hostile or broken header cannot park us forever).
`sleep` is injectable so tests never wait; by default it is `shipper.runtime.stopping.pause`, so a stop
request ends a back-off at once (`Interrupted`) instead of waiting it out.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)

from shipper.runtime import stopping

MAX_RETRY_AFTER = 300.0


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
