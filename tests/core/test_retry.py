"""The shared retry policy: Retry-After honoured, bounded attempts, no real sleeping in tests."""

from __future__ import annotations

import pytest
from freezegun import freeze_time

from shipper.errors import RetryableResponseError
from shipper.retry import MAX_RETRY_AFTER, RetryPolicy, parse_retry_after, retrying


def test_retry_after_seconds() -> None:
    """Delta-seconds are read as seconds and capped."""
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("999999") == MAX_RETRY_AFTER
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@freeze_time("2026-01-01 00:00:00", tz_offset=0)
def test_retry_after_http_date() -> None:
    """An HTTP date is read as the time left until then (never negative)."""
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT") == pytest.approx(30.0)
    assert parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT") == 0.0


def test_waits_at_least_retry_after_and_gives_up_after_max_attempts() -> None:
    """The wait honours Retry-After as a floor; after max_attempts the last error is re-raised."""
    slept: list[float] = []
    calls = []

    def flaky() -> None:
        calls.append(1)
        raise RetryableResponseError("429", retry_after=12.0)

    retry = retrying(RetryPolicy(max_attempts=3), retry_on=lambda e: True, sleep=slept.append)
    with pytest.raises(RetryableResponseError):
        retry(flaky)
    assert len(calls) == 3
    assert slept == [12.0, 12.0]


def test_backoff_is_jittered_and_bounded() -> None:
    """Without Retry-After, waits are random within the exponential envelope."""
    slept: list[float] = []

    def always() -> None:
        raise RetryableResponseError("503")

    retry = retrying(
        RetryPolicy(max_attempts=6, maximum=4.0), retry_on=lambda e: True, sleep=slept.append
    )
    with pytest.raises(RetryableResponseError):
        retry(always)
    assert len(slept) == 5 and all(0 <= s <= 4.0 for s in slept)
