"""Encode, batch and deliver events so one bad event neither dead-letters nor wedges its batch.

`deliver_in_batches` encodes each event (one that cannot be encoded is rejected alone), cuts
requests by count and bytes, and delivers each through `deliver_isolating`, which hands a batch
to `attempt`. When the receiver refuses it for good (a 4xx), or keeps failing it (a 5xx after
retries, perhaps an event it chokes on), either the receiver named the offending item (Splunk
HEC's `invalid-event-number`) or the batch is halved and each half tried again (with short
retries), until single events are left.

`Evidence` is the one home of the rule that says whether such refusals are about the events or
about the receiver. An event refused alone is dead-lettered only if the receiver accepted
another request of the same `send` after the first refusal (its siblings went through), and
unless the send ended in a run of refusals (the receiver may have gone down just then).
Otherwise the refused events are not blamed yet (`SinkRefusalsUnexplainedError`: the worker
sends them again with the next window). When too many requests in a row are refused
(`in_a_row_limit`) or a batch costs more than `max_refusals`, the cause is not a single event:
an outage, a receiver refusing everything, a wrong configuration. The sink then fails
(`SinkRetryableError`: its cursor stays, nothing is dead-lettered) and the next run tries again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from shipper.errors import SinkError, SinkRefusalsUnexplainedError, SinkRetryableError
from shipper.http.sink_client import ReceiverFailedError
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import Progress, Rejection, batches

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
Item = tuple[AuditEvent, bytes]

DEFAULT_MAX_REFUSALS = 64


@dataclass(frozen=True, slots=True)
class Refused:
    """The receiver refused a request for good.

    `index` names the offending item when the receiver says which one; `prefix_accepted` says
    whether the items before it were taken (HEC indexes them) or must be sent again.
    """

    reason: str
    index: int | None = None
    prefix_accepted: bool = True


class Attempt(Protocol[T_contra]):
    """Send one request; `quick` asks for short retries (a piece of a batch being isolated)."""

    def __call__(self, items: Sequence[T_contra], *, quick: bool = False) -> Refused | None: ...


def in_a_row_limit(size: int) -> int:
    """Refusals in a row a batch of `size` may cost: halving to one event, plus a sibling or two."""
    return size.bit_length() + 2


@dataclass(slots=True)
class Evidence(Generic[T]):
    """What one `send` learnt: accepted items, and refused ones and whether to blame them."""

    sink: str
    max_refusals: int = DEFAULT_MAX_REFUSALS
    delivered: list[T] = field(default_factory=list)
    pinned: list[tuple[T, str]] = field(default_factory=list)  # refused, and others accepted since
    suspects: list[tuple[T, str]] = field(default_factory=list)  # refused, nothing accepted since
    refusals: int = 0  # in the current batch
    in_a_row: int = 0  # refused requests since the last accepted one
    limit: int = 3
    accepted_after_refusal: bool = False

    def begin(self, size: int) -> None:
        """A new batch of `size` items: its own refusal budget."""
        self.refusals = 0
        self.limit = in_a_row_limit(size)

    def accept(self, items: Sequence[T]) -> None:
        self.delivered.extend(items)
        self.in_a_row = 0
        self.pinned.extend(self.suspects)
        self.suspects.clear()
        if self.pinned or self.refusals:
            self.accepted_after_refusal = True

    def refuse(self, reason: str) -> None:
        """Count a refused request; raise when it can no longer be about single events."""
        self.refusals += 1
        self.in_a_row += 1
        if self.refusals > self.max_refusals:
            raise self._unpinnable(
                f"{self.max_refusals} requests refused or failed in one batch", reason
            )
        if self.in_a_row > self.limit:
            raise self._unpinnable(f"{self.in_a_row} requests in a row refused or failed", reason)

    def suspect(self, item: T, reason: str) -> None:
        self.suspects.append((item, reason))

    def verdict(self) -> list[tuple[T, str]]:
        """The refused items to dead-letter; raises if the refusals are not theirs."""
        if self.suspects:
            if not self.accepted_after_refusal:
                raise self._unpinnable("nothing was accepted", self.suspects[0][1], later=True)
            if self.in_a_row > 1:
                what = f"the last {self.in_a_row} requests were refused or failed"
                raise self._unpinnable(what, self.suspects[-1][1], later=True)
        return [*self.pinned, *self.suspects]

    def _unpinnable(self, what: str, reason: str, *, later: bool = False) -> SinkRetryableError:
        """The error; with `later`, one saying later events could still tell (see the worker)."""
        kind = SinkRefusalsUnexplainedError if later else SinkRetryableError
        return kind(
            self.sink,
            f"{what} while isolating the events behind a refusal, so it is not about single "
            "events (the receiver may be down, misconfigured or refusing everything; the cursor "
            f"stays): {reason}",
        )


def deliver_isolating(items: Sequence[T], attempt: Attempt[T], evidence: Evidence[T]) -> None:
    """Deliver `items` in order through `attempt`, recording the outcome in `evidence`."""
    evidence.begin(len(items))
    work: deque[Sequence[T]] = deque([items] if items else [])
    quick = False  # full retries for the batch; short ones for its pieces, once it failed
    while work:
        chunk = work.popleft()
        try:
            refused = attempt(chunk, quick=quick)
        except ReceiverFailedError as exc:
            refused = Refused(f"the receiver failed on it every time: {exc.reason}")
        if refused is None:
            evidence.accept(chunk)
            continue
        quick = True
        evidence.refuse(refused.reason)
        if refused.index is not None and 0 <= refused.index < len(chunk):
            index = refused.index
            if refused.prefix_accepted and index:
                evidence.accept(chunk[:index])
            evidence.suspect(chunk[index], refused.reason)
            head = [] if refused.prefix_accepted else list(chunk[:index])
            rest = [*head, *chunk[index + 1 :]]
            if rest:
                work.appendleft(rest)
        elif len(chunk) == 1:
            evidence.suspect(chunk[0], refused.reason)
        else:
            middle = len(chunk) // 2
            work.appendleft(chunk[middle:])
            work.appendleft(chunk[:middle])


def deliver_in_batches(
    events: Sequence[AuditEvent],
    encode: Callable[[AuditEvent], bytes],
    attempt: Attempt[Item],
    *,
    sink: str,
    max_events: int,
    max_bytes: int,
    acknowledged: bool = False,
) -> list[Rejection]:
    """Deliver `events` oldest first in bounded requests; return what was refused for good.

    With `acknowledged` (an accepted request is durable), a failure carries the events settled
    before it as `progress`, so the next attempt at the window need not send them again.
    """
    items: list[Item] = []
    rejections: list[Rejection] = []
    for event in events:
        try:
            items.append((event, encode(event)))
        except (TypeError, ValueError) as exc:  # orjson refuses e.g. lone surrogates
            rejections.append(Rejection(event, f"cannot encode as JSON: {exc}"))
    ranges = batches(
        [event for event, _ in items],
        [doc for _, doc in items],
        max_events=max_events,
        max_bytes=max_bytes,
    )
    evidence: Evidence[Item] = Evidence(sink)
    try:
        for start, end in ranges:
            deliver_isolating(items[start:end], attempt, evidence)
        refused = evidence.verdict()
    except SinkError as exc:
        if acknowledged:
            pinned = [Rejection(item[0], reason) for item, reason in evidence.pinned]
            exc.progress = Progress([e for e, _ in evidence.delivered], [*rejections, *pinned])
        raise
    rejections.extend(Rejection(item[0], reason) for item, reason in refused)
    return rejections
