"""The contract every sink passes (see shipper/sink.py), run against each sink's real receiver."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from shipper.errors import SinkError, SinkRetryableError
from shipper.pipeline.sink import Sink
from shipper.testing.contract.events import events, hostile_events
from shipper.testing.contract.harness import SinkHarness

FAST_RETRY = {"retry_max_attempts": 2, "retry_max_time": 5.0}


def deliver(sink: Sink, batch: list) -> list:
    rejected = list(sink.send(batch))
    sink.flush()
    return rejected


def wait_for_ids(harness: SinkHarness, expected: set[str], timeout: float = 10.0) -> list[str]:
    """Receivers such as syslog write asynchronously: poll until `expected` arrived or time is up."""
    deadline = time.monotonic() + timeout
    received = harness.received_ids()
    while not expected <= set(received) and time.monotonic() < deadline:
        time.sleep(0.05)
        received = harness.received_ids()
    return received


def test_delivers_every_event_once_in_order(harness: SinkHarness) -> None:
    """A clean open/send/flush/close delivers each event exactly once, oldest first."""
    batch = events(25)
    sink = harness.make_sink()
    sink.open()
    try:
        assert deliver(sink, batch) == []
    finally:
        sink.close()
    received = wait_for_ids(harness, {e.id for e in batch})
    assert received == [e.id for e in batch]


def test_same_batch_twice_is_safe(harness: SinkHarness) -> None:
    """Re-sending a window (what a crash before the cursor write causes) raises nothing and loses nothing."""
    batch = events(10)
    sink = harness.make_sink()
    sink.open()
    try:
        deliver(sink, batch)
        deliver(sink, batch)
    finally:
        sink.close()
    received = wait_for_ids(harness, {e.id for e in batch})
    counts = Counter(received)
    assert set(counts) == {e.id for e in batch}
    assert all(1 <= n <= 2 for n in counts.values())


def test_unreachable_receiver_is_a_retryable_sink_error(harness: SinkHarness) -> None:
    """With the receiver down, the sink gives up within its retry budget with a retryable error."""
    with harness.receiver_down():
        sink = harness.make_sink(**FAST_RETRY)
        began = time.monotonic()
        with pytest.raises(SinkRetryableError):
            try:
                sink.open()
                deliver(sink, events(3))
            finally:
                sink.close()
        assert time.monotonic() - began < 30


def test_survives_receiver_restart(harness: SinkHarness) -> None:
    """Events sent after the receiver restarted arrive, on the same sink instance."""
    first, second = events(5), events(5, start=100)
    sink = harness.make_sink()
    sink.open()
    try:
        deliver(sink, first)
        wait_for_ids(harness, {e.id for e in first})
        harness.restart_receiver()
        deliver(sink, second)
    finally:
        sink.close()
    received = wait_for_ids(harness, {e.id for e in first + second})
    assert {e.id for e in first + second} <= set(received)


def test_permanent_rejection_is_returned_not_raised(harness: SinkHarness) -> None:
    """An event the receiver refuses for good comes back as a Rejection; the others are delivered."""
    batch = events(6)
    if not harness.reject_permanently(batch[2].id):
        pytest.skip(f"{harness.sink_type} receivers cannot refuse a single event")
    sink = harness.make_sink()
    sink.open()
    try:
        rejected = deliver(sink, batch)
    finally:
        sink.close()
    assert [r.event.id for r in rejected] == [batch[2].id]
    assert rejected[0].reason
    others = {e.id for e in batch} - {batch[2].id}
    assert others <= set(wait_for_ids(harness, others))


def test_hostile_content_yields_one_record_per_event(harness: SinkHarness) -> None:
    """Newlines, NUL, delimiters, huge and non-BMP strings never split or merge records."""
    batch = hostile_events()
    sink = harness.make_sink()
    sink.open()
    try:
        assert deliver(sink, batch) == []
    finally:
        sink.close()
    received = wait_for_ids(harness, {e.id for e in batch})
    assert sorted(received) == sorted(e.id for e in batch)


def test_errors_are_classified(harness: SinkHarness) -> None:
    """Whatever goes wrong, a sink raises only SinkError subclasses (never a raw OSError or httpx error)."""
    with harness.receiver_down():
        sink = harness.make_sink(**FAST_RETRY)
        try:
            sink.open()
            deliver(sink, events(1))
        except SinkError:
            pass
        finally:
            sink.close()
