"""Faults for the compliance emulator: what fires where (listing, download, storage), and when.

The kinds the audit-log emulator has that apply to files (rate limits, 5xx pages from a proxy,
timeouts, truncated bodies, dropped connections), plus two of this API's own: a download answered
with an already expired signed URL, and a stored body whose bytes no longer match `file_sha256`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal, get_args

FaultKind = Literal[
    "429", "500", "502", "503", "504", "timeout", "truncated", "reset", "concatenated",
    "expired_url", "checksum",
]  # fmt: skip
Where = Literal["list", "download", "storage"]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
WHERE: frozenset[str] = frozenset(get_args(Where))
# Kinds that only make sense at one place.
_ONLY_AT: dict[str, str] = {
    "expired_url": "download",
    "checksum": "storage",
    "concatenated": "list",
}


@dataclass(frozen=True)
class ComplianceFault:
    """One fault at `where` (optionally only for `file_id`): fires on the next `count` matching
    requests, or on each with `probability`."""

    kind: FaultKind
    where: Where = "list"
    count: int = 1
    probability: float = 0.0
    retry_after: str | None = None
    delay: float = 0.0  # seconds a `timeout` holds the answer
    file_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.where not in WHERE:
            raise ValueError(f"unknown fault place {self.where!r}; one of {sorted(WHERE)}")
        if _ONLY_AT.get(self.kind, self.where) != self.where:
            raise ValueError(f"fault {self.kind!r} applies at {_ONLY_AT[self.kind]!r} only")
        if self.count < 1 or not 0.0 <= self.probability <= 1.0 or self.delay < 0:
            raise ValueError("need count >= 1, 0 <= probability <= 1 and delay >= 0")
        if self.retry_after is not None and any(c in self.retry_after for c in "\r\n"):
            raise ValueError("retry_after must be a single header line")


@dataclass
class _Armed:
    fault: ComplianceFault
    remaining: int


class ComplianceFaultSchedule:
    """Thread-safe list of active faults; `next()` picks the one for a request, if any."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 -- reproducible fault timing, not secrets
        self._active: list[_Armed] = []  # in injection order

    def add(self, fault: ComplianceFault) -> None:
        with self._lock:
            self._active.append(_Armed(fault, fault.count))

    def clear(self) -> None:
        with self._lock:
            self._active.clear()

    def next(self, where: Where, file_id: str | None = None) -> ComplianceFault | None:
        """The first active fault for this place (and file) that fires; counted ones always do."""
        with self._lock:
            for armed in self._active:
                fault = armed.fault
                if fault.where != where or fault.file_id not in (None, file_id):
                    continue
                if fault.probability > 0:
                    if self._rng.random() < fault.probability:
                        return fault
                    continue
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._active.remove(armed)
                return fault
        return None
