"""How many API requests may be in flight: `concurrency` at most, fewer while the API pushes back.

An additive-increase, multiplicative-decrease window, as TCP and Vector's adaptive request
concurrency keep one: a 429 or 503 halves the window, and each run of as many answers in a row
as the window holds, with no push-back among them, widens it by one, back up to `concurrency`.
A `Retry-After` pause alone would let every waiting thread resume at once, into the same limit,
and be refused again all together.

The answers to one round of requests all say the same thing, so only the first push-back from
requests sent at the current window size narrows it: the requests already in flight when it
narrowed cannot make it narrow again (TCP's one decrease per window of data).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Literal

Answer = Literal["accepted", "pushed_back", "other"]


class InFlightLimit:
    """A counting gate whose width follows the API's answers (thread-safe)."""

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError("the ceiling must be at least 1")
        self.ceiling = ceiling
        self._width = ceiling
        self._in_flight = 0
        self._epoch = 0  # counts narrowings: a request remembers the epoch it was sent in
        self._streak = 0  # answers accepted in a row since the last change
        self._changed = threading.Condition()

    @property
    def width(self) -> int:
        """Requests allowed in flight now."""
        return self._width

    def acquire(self) -> int:
        """Wait for a free slot; returns the ticket to hand back to `release`."""
        with self._changed:
            while self._in_flight >= self._width:
                self._changed.wait()
            self._in_flight += 1
            return self._epoch

    def release(self, ticket: int, answer: Answer) -> tuple[int, int]:
        """Free the slot taken with `ticket`, learning from the answer; returns the width before
        and after (equal unless this answer changed it)."""
        with self._changed:
            self._in_flight -= 1
            before = self._width
            if answer == "pushed_back":
                self._streak = 0
                if ticket == self._epoch and self._width > 1:
                    self._width = max(self._width // 2, 1)
                    self._epoch += 1
            elif answer == "accepted" and self._width < self.ceiling:
                self._streak += 1
                if self._streak >= self._width:
                    self._width += 1
                    self._streak = 0
            # A wider window frees two slots (this one and the new one): wake every waiter.
            if self._width > before:
                self._changed.notify_all()
            else:
                self._changed.notify()
            return before, self._width


class RetryAfterGate:
    """A `Retry-After` told to one request holds back every thread's next request, not only the
    one that was told (the others would be refused the same way). Thread-safe."""

    def __init__(self, sleep: Callable[[float], Any]) -> None:
        self._sleep = sleep
        self._lock = threading.Lock()
        self._until = 0.0  # monotonic time before which no request is sent

    def pause(self, seconds: float | None) -> None:
        """No request for `seconds` from now (None or 0: no pause)."""
        if seconds:
            with self._lock:
                self._until = max(self._until, time.monotonic() + seconds)

    def hold_back(self) -> None:
        """Wait out a pause another thread was given (once: `sleep` may be a test's fake)."""
        wait = self._until - time.monotonic()
        if wait > 0:
            self._sleep(wait)
