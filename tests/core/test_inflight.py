"""The adaptive limit on API requests in flight: halve on push-back, widen by one per clean round."""

from __future__ import annotations

import threading

import pytest

from shipper.source.inflight import InFlightLimit


def test_a_round_of_refusals_halves_the_window_once() -> None:
    """Every request of a round gets the same 429: the window halves once, not once per answer."""
    limit = InFlightLimit(8)
    tickets = [limit.acquire() for _ in range(8)]
    changes = [limit.release(ticket, "pushed_back") for ticket in tickets[:6]]
    assert changes == [(8, 4)] + [(4, 4)] * 5  # one narrowing, reported once
    assert [limit.release(ticket, "accepted") for ticket in tickets[6:]] == [(4, 4), (4, 4)]


def test_a_refusal_of_a_request_sent_after_narrowing_narrows_again() -> None:
    """Each push-back on a request sent after the last narrowing halves the in-flight width again, never below one."""
    limit = InFlightLimit(8)
    limit.release(limit.acquire(), "pushed_back")
    assert limit.width == 4
    limit.release(limit.acquire(), "pushed_back")
    assert limit.width == 2
    limit.release(limit.acquire(), "pushed_back")
    limit.release(limit.acquire(), "pushed_back")
    assert limit.width == 1  # never below one request


def test_each_clean_round_widens_by_one_up_to_the_ceiling() -> None:
    """A full round of clean answers at the current width widens it by one, up to the configured ceiling."""
    limit = InFlightLimit(4)
    limit.release(limit.acquire(), "pushed_back")
    limit.release(limit.acquire(), "pushed_back")
    assert limit.width == 1
    widths = [limit.release(limit.acquire(), "accepted")[1] for _ in range(12)]
    # one answer at width 1, two at width 2, three at width 3; then it stays at the ceiling
    assert widths == [2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4]


def test_failures_that_are_not_push_back_neither_narrow_nor_count_as_clean() -> None:
    """Timeouts and 500s neither narrow the in-flight width nor count toward widening it."""
    limit = InFlightLimit(4)
    limit.release(limit.acquire(), "pushed_back")
    assert limit.width == 2
    for _ in range(5):
        limit.release(limit.acquire(), "other")  # a timeout, a 500: says nothing about load
    assert limit.width == 2
    limit.release(limit.acquire(), "accepted")
    limit.release(limit.acquire(), "other")
    limit.release(limit.acquire(), "accepted")
    assert limit.width == 3


def test_a_refusal_restarts_the_count_of_clean_answers() -> None:
    """A push-back halves the width and restarts the count of clean answers needed to widen."""
    limit = InFlightLimit(8)
    limit.release(limit.acquire(), "pushed_back")  # 4
    a, b = limit.acquire(), limit.acquire()
    limit.release(a, "accepted")
    limit.release(limit.acquire(), "accepted")
    limit.release(limit.acquire(), "accepted")
    limit.release(b, "pushed_back")  # sent at width 4 (same epoch): halves, streak lost
    assert limit.width == 2
    limit.release(limit.acquire(), "accepted")
    assert limit.width == 2


def test_acquire_waits_for_a_free_slot_and_a_wider_window_wakes_waiters() -> None:
    """acquire() blocks while every slot is taken, and widening the window wakes the waiters."""
    limit = InFlightLimit(2)
    limit.release(limit.acquire(), "pushed_back")
    assert limit.width == 1
    held = limit.acquire()
    got: list[int] = []
    waiters = [threading.Thread(target=lambda: got.append(limit.acquire())) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join(timeout=0.2)
    assert got == [] and all(w.is_alive() for w in waiters)  # width 1, one held: both wait
    limit.release(held, "accepted")  # one clean answer at width 1: width 2, two slots free
    for waiter in waiters:
        waiter.join(timeout=10)
    assert len(got) == 2 and limit.width == 2


def test_a_ceiling_below_one_is_refused() -> None:
    """An in-flight ceiling below one is refused with a clear error."""
    with pytest.raises(ValueError, match="at least 1"):
        InFlightLimit(0)
