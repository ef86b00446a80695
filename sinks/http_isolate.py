"""Encode, batch and deliver events so one bad event does not dead-letter its whole batch.

`deliver_in_batches` encodes each event (one that cannot be encoded is rejected alone), cuts
requests by count and bytes, and delivers each through `deliver_isolating`, which hands a batch to `attempt`. When the receiver refuses it permanently,
either the receiver named the offending item (Splunk HEC's `invalid-event-number`) and that
item alone is rejected, or the batch is halved and each half tried again. Refusals are bounded
per batch (`max_refusals`): past that budget a refused piece is rejected whole, so a receiver
that refuses everything costs a few dozen requests, not one per event.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from shipper.model import AuditEvent
from shipper.sink import Rejection, batches

T = TypeVar("T")
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


Attempt = Callable[[Sequence[T]], Refused | None]


def deliver_isolating(
    items: Sequence[T], attempt: Attempt[T], *, max_refusals: int = DEFAULT_MAX_REFUSALS
) -> list[tuple[T, str]]:
    """Deliver `items` in order through `attempt`; return the refused items with their reasons."""
    rejected: list[tuple[T, str]] = []
    work: deque[Sequence[T]] = deque([items] if items else [])
    refusals = 0
    while work:
        chunk = work.popleft()
        refused = attempt(chunk)
        if refused is None:
            continue
        refusals += 1
        if refusals > max_refusals:
            note = f"{refused.reason} (not isolated further: {max_refusals} refusals in this batch)"
            rejected.extend((item, note) for item in chunk)
        elif refused.index is not None and 0 <= refused.index < len(chunk):
            index = refused.index
            rejected.append((chunk[index], refused.reason))
            head = [] if refused.prefix_accepted else list(chunk[:index])
            rest = [*head, *chunk[index + 1 :]]
            if rest:
                work.appendleft(rest)
        elif len(chunk) == 1:
            rejected.append((chunk[0], refused.reason))
        else:
            middle = len(chunk) // 2
            work.appendleft(chunk[middle:])
            work.appendleft(chunk[:middle])
    return rejected


def deliver_in_batches(
    events: Sequence[AuditEvent],
    encode: Callable[[AuditEvent], bytes],
    attempt: Attempt[Item],
    *,
    max_events: int,
    max_bytes: int,
) -> list[Rejection]:
    """Deliver `events` oldest first in bounded requests; return what was refused for good."""
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
    for start, end in ranges:
        refused = deliver_isolating(items[start:end], attempt)
        rejections.extend(Rejection(item[0], reason) for item, reason in refused)
    return rejections
