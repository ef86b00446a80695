"""Splunk HEC indexer acknowledgement: a batch counts as delivered only once HEC says it is indexed.

With `indexer_ack = true` every accepted request returns an `ackId` (per channel, counting up
from 0). `AckTracker.wait` polls `/services/collector/ack` until each id reports `true`. A batch
not acknowledged within `ack_timeout` (or whose 200 carried no usable id) is sent again, at most
`max_resends` times, after which the sink gives up for this run; the pipeline then leaves the
cursor where it was, so the next run sends the window again. Re-sending can duplicate events
that were indexed but whose acknowledgement was lost (a Splunk restart forgets pending acks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from shipper.sink_api import SinkRetryableError, sink_logger

T = TypeVar("T")

ACKS_PER_QUERY = 1000


@dataclass(slots=True)
class _Pending(Generic[T]):
    items: Sequence[T]
    ack_id: int | None
    sent_at: float
    resends: int = 0


Poll = Callable[[list[int]], dict[int, bool]]
Resend = Callable[[Sequence[T]], int | None]


class AckTracker(Generic[T]):
    def __init__(
        self,
        sink: str,
        *,
        poll: Poll,
        resend: Resend[T],
        timeout: float,
        interval: float,
        max_resends: int,
        clock: Callable[[], float],
        sleep: Callable[[float], object],
    ) -> None:
        self._sink = sink
        self._log = sink_logger(sink)
        self._poll = poll
        self._resend = resend
        self._timeout = timeout
        self._interval = interval
        self._max_resends = max_resends
        self._clock = clock
        self._sleep = sleep
        self._pending: list[_Pending[T]] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def track(self, items: Sequence[T], ack_id: int | None) -> None:
        """Remember a batch HEC accepted; `ack_id` None means "send again at the next wait"."""
        self._forget_reused(ack_id)
        self._pending.append(_Pending(items, ack_id, self._clock()))

    def discard(self) -> None:
        self._pending.clear()

    def _forget_reused(self, ack_id: int | None) -> None:
        # HEC restarts number a channel's ids from 0 again: an older batch holding the same id
        # can no longer be told apart, so it is treated as unacknowledged (sent again).
        for entry in self._pending:
            if ack_id is not None and entry.ack_id == ack_id:
                entry.ack_id = None

    def wait(self) -> None:
        """Block until every tracked batch is acknowledged; `SinkRetryableError` if some never is."""
        while self._pending:
            self._collect()
            self._resend_expired()
            if self._pending:
                self._sleep(self._interval)

    def _collect(self) -> None:
        ids = [p.ack_id for p in self._pending if p.ack_id is not None]
        done: set[int] = set()
        for start in range(0, len(ids), ACKS_PER_QUERY):
            answer = self._poll(ids[start : start + ACKS_PER_QUERY])
            done.update(ack for ack, indexed in answer.items() if indexed)
        self._pending = [p for p in self._pending if p.ack_id is None or p.ack_id not in done]

    def _resend_expired(self) -> None:
        now = self._clock()
        for entry in self._pending:
            if entry.ack_id is not None and now - entry.sent_at < self._timeout:
                continue
            if entry.resends >= self._max_resends:
                self._give_up(entry)
            self._log.warning(
                "hec_batch_unacknowledged_resending",
                events=len(entry.items),
                ack_id=entry.ack_id,
                resend=entry.resends + 1,
            )
            new_id = self._resend(entry.items)
            self._forget_reused(new_id)
            entry.ack_id, entry.sent_at, entry.resends = new_id, self._clock(), entry.resends + 1

    def _give_up(self, entry: _Pending[T]) -> None:
        stuck = len(self._pending)
        self._pending.clear()
        raise SinkRetryableError(
            self._sink,
            f"{stuck} batch(es) not acknowledged by the indexers within ack_timeout "
            f"({self._timeout:g}s) after {entry.resends} re-send(s); they will be sent again next run",
        )
