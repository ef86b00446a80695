"""Request counters: `Stats` as handed out, `Recorder` as updated by every handler thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import orjson


@dataclass
class Stats:
    """Counters since the emulator was created; `Emulator.stats` hands out a copy."""

    requests: int = 0
    list_requests: int = 0
    events_listed: int = 0  # over all list pages: more than the events held means re-reads
    most_lists_at_once: int = 0  # the most list requests being answered at the same time
    faults_served: dict[str, int] = field(default_factory=dict)
    responses_by_status: dict[int, int] = field(default_factory=dict)
    ignored_params: dict[str, int] = field(default_factory=dict)  # unknown query parameters

    def to_json(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)


class Recorder:
    """`Stats` behind a lock: every handler thread updates it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = Stats()
        self._lists_now = 0

    def count(self, *, listing: bool = False) -> None:
        with self._lock:
            self._stats.requests += 1
            self._stats.list_requests += listing

    @contextlib.contextmanager
    def answering_list(self, most: int | None = None) -> Iterator[bool]:
        """Around the answer to one list request (its added latency included); yields False,
        and counts nothing, when `most` are being answered already (the caller refuses it)."""
        with self._lock:
            admitted = most is None or self._lists_now < most
            if admitted:
                self._lists_now += 1
                self._stats.most_lists_at_once = max(
                    self._stats.most_lists_at_once, self._lists_now
                )
        try:
            yield admitted
        finally:
            if admitted:
                with self._lock:
                    self._lists_now -= 1

    def listed(self, events: int) -> None:
        with self._lock:
            self._stats.events_listed += events

    def tally(self, counter: str, key: str | int) -> None:
        with self._lock:
            values: dict[Any, int] = getattr(self._stats, counter)
            values[key] = values.get(key, 0) + 1

    def snapshot(self) -> Stats:
        with self._lock:
            return replace(
                self._stats,
                faults_served=dict(self._stats.faults_served),
                responses_by_status=dict(self._stats.responses_by_status),
                ignored_params=dict(self._stats.ignored_params),
            )
