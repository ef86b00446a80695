"""The isolation rule: refusals are pinned on single events only with evidence the receiver takes others."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from shipper.errors import SinkRetryableError
from shipper.http.isolate import Evidence, Refused, deliver_isolating, in_a_row_limit
from shipper.http.sink_client import ReceiverFailedError


class Receiver:
    """Answers each request through `verdict(request number, items)`; records what it accepted."""

    def __init__(self, verdict: Callable[[int, Sequence[int]], Refused | None]) -> None:
        self.verdict = verdict
        self.accepted: list[int] = []
        self.requests: list[tuple[list[int], bool]] = []

    def __call__(self, items: Sequence[int], *, quick: bool = False) -> Refused | None:
        self.requests.append((list(items), quick))
        answer = self.verdict(len(self.requests), items)
        if answer is None:
            self.accepted.extend(items)
        return answer


def failing_on(*poison: int) -> Callable[[int, Sequence[int]], Refused | None]:
    def verdict(_: int, items: Sequence[int]) -> Refused | None:
        if set(items) & set(poison):
            raise ReceiverFailedError("hook", "gave up after retries: HTTP 500", status=500)
        return None

    return verdict


def deliver(items: list[int], receiver: Receiver) -> list[tuple[int, str]]:
    evidence: Evidence[int] = Evidence("hook")
    deliver_isolating(items, receiver, evidence)
    return evidence.verdict()


@pytest.mark.parametrize("poison", [0, 37, 99])
def test_an_event_the_receiver_fails_on_is_pinned_and_the_rest_delivered_in_order(
    poison: int,
) -> None:
    """First, middle or last: the 5xx event alone is pinned, the others delivered once, in order."""
    receiver = Receiver(failing_on(poison))
    pinned = deliver(list(range(100)), receiver)
    assert [item for item, _ in pinned] == [poison]
    assert "failed on it every time" in pinned[0][1]
    assert receiver.accepted == [i for i in range(100) if i != poison]
    assert receiver.requests[0][1] is False  # the batch gets full retries
    assert all(quick for _, quick in receiver.requests[1:])  # its pieces short ones
    assert len(receiver.requests) <= 2 * in_a_row_limit(100)


def test_a_lone_refused_event_is_not_pinned_without_evidence() -> None:
    """A batch of one refused event proves nothing about the event: the sink fails instead."""
    receiver = Receiver(lambda _, __: Refused("HTTP 400"))
    with pytest.raises(SinkRetryableError, match="nothing was accepted"):
        deliver([7], receiver)


def test_a_receiver_going_down_during_isolation_dead_letters_nothing_it_did_not_pin() -> None:
    """Events refused after the receiver's last acceptance are never blamed: an outage, not poison."""

    def verdict(number: int, items: Sequence[int]) -> Refused | None:
        if 10 in items or number > 10:  # one poison, then the receiver fails everything
            return Refused("HTTP 500")
        return None

    receiver = Receiver(verdict)
    evidence: Evidence[int] = Evidence("hook")
    with pytest.raises(SinkRetryableError, match="in a row"):
        deliver_isolating(list(range(64)), receiver, evidence)
    assert receiver.requests[9] == ([11], True)  # accepted after 10 failed alone
    assert [item for item, _ in evidence.pinned] == [10]
    assert evidence.suspects  # refused once the receiver went down: suspected, never pinned


def test_refusals_ending_in_a_run_are_not_pinned() -> None:
    """Two refused events at the very end, with nothing accepted after: the sink fails."""
    receiver = Receiver(lambda _, items: Refused("HTTP 422") if {6, 7} & set(items) else None)
    with pytest.raises(SinkRetryableError, match="the last 3 requests"):
        deliver(list(range(8)), receiver)


def test_a_receiver_naming_every_event_as_invalid_fails_in_a_few_requests() -> None:
    """HEC's invalid-event-number on every first item: bounded, then the sink fails."""
    receiver = Receiver(lambda _, __: Refused("HEC code 6", index=0))
    with pytest.raises(SinkRetryableError, match="in a row"):
        deliver(list(range(500)), receiver)
    assert len(receiver.requests) == in_a_row_limit(500) + 1
