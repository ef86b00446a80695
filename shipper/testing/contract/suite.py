"""The sink contract suite: the promises every sink keeps, as tests a sink's author inherits.

Needs pytest (`pip install 'shipper[testing]'`). In a test module of the sink's package::

    from shipper.testing.contract.suite import SinkContractSuite

    class TestMySinkContract(SinkContractSuite):
        def make_harness(self, tmp_path):
            return my_harness(tmp_path)  # a context manager yielding a `SinkHarness`

pytest collects the subclass (its name starts with `Test`) and runs every `test_*` below against
the sink's real receiver; the base class itself is never collected. The contract is the one
`shipper.pipeline.sink` documents (`shipper.sink_api` re-exports its names).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from shipper.errors import SinkError, SinkRetryableError
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import Rejection, Sink
from shipper.testing.contract.events import events, hostile_events
from shipper.testing.contract.harness import SinkHarness

# Small enough that a test against a receiver that is down ends in seconds.
FAST_RETRY = {"retry_max_attempts": 2, "retry_max_time": 5.0}


def deliver(sink: Sink, batch: Sequence[AuditEvent]) -> list[Rejection]:
    """One window as the pipeline hands it over: `send`, then the `flush` barrier."""
    rejected = list(sink.send(batch))
    sink.flush()
    return rejected


def deliver_on_a_fresh_sink(harness: SinkHarness, batch: Sequence[AuditEvent]) -> list[Rejection]:
    """A new sink opened, `batch` delivered as one window, the sink closed; what it refused."""
    sink = harness.make_sink()
    sink.open()
    try:
        return deliver(sink, batch)
    finally:
        sink.close()


def wait_for_ids(harness: SinkHarness, expected: set[str], timeout: float = 10.0) -> list[str]:
    """Receivers such as syslog write asynchronously: poll until `expected` arrived or time is up."""
    deadline = time.monotonic() + timeout
    received = harness.received_ids()
    while not expected <= set(received) and time.monotonic() < deadline:
        time.sleep(0.05)
        received = harness.received_ids()
    return received


class SinkContractSuite:
    """Every test of the contract; a subclass supplies the sink's harness via `make_harness`."""

    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        """The sink's harness, its receiver started on entry and stopped on exit."""
        raise NotImplementedError(
            f"{type(self).__name__} must define make_harness(tmp_path) (see SinkContractSuite)"
        )

    @pytest.fixture
    def harness(self, tmp_path: Path) -> Iterator[SinkHarness]:
        with self.make_harness(tmp_path) as made:
            yield made

    def test_delivers_every_event_once_in_order(self, harness: SinkHarness) -> None:
        """A clean open/send/flush/close delivers each event exactly once, oldest first."""
        batch = events(25)
        assert deliver_on_a_fresh_sink(harness, batch) == []
        received = wait_for_ids(harness, {e.id for e in batch})
        assert received == [e.id for e in batch]

    def test_same_batch_twice_is_safe(self, harness: SinkHarness) -> None:
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

    def test_unreachable_receiver_is_a_retryable_sink_error(self, harness: SinkHarness) -> None:
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

    def test_survives_receiver_restart(self, harness: SinkHarness) -> None:
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

    def test_permanent_rejection_is_returned_not_raised(self, harness: SinkHarness) -> None:
        """An event the receiver refuses for good comes back as a Rejection; the others are delivered.

        Where a receiver cannot refuse one event (a file, a syslog daemon), none comes back and
        every event is delivered."""
        batch = events(6)
        if not harness.reject_permanently(batch[2].id):
            assert deliver_on_a_fresh_sink(harness, batch) == []
            every = {e.id for e in batch}
            assert every <= set(wait_for_ids(harness, every))
            return
        rejected = deliver_on_a_fresh_sink(harness, batch)
        assert [r.event.id for r in rejected] == [batch[2].id]
        assert rejected[0].reason
        others = {e.id for e in batch} - {batch[2].id}
        assert others <= set(wait_for_ids(harness, others))

    def test_hostile_content_yields_one_record_per_event(self, harness: SinkHarness) -> None:
        """Newlines, NUL, delimiters, huge and non-BMP strings never split or merge records."""
        batch = hostile_events()
        assert deliver_on_a_fresh_sink(harness, batch) == []
        received = wait_for_ids(harness, {e.id for e in batch})
        assert sorted(received) == sorted(e.id for e in batch)

    def test_errors_are_classified(self, harness: SinkHarness) -> None:
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


__all__ = ["FAST_RETRY", "SinkContractSuite", "deliver", "wait_for_ids"]
