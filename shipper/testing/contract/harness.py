"""What each sink's test harness provides so the shared contract suite can drive it.

A harness module is `tests/contract/harness_<type>.py` defining `make_harness(tmp_path) -> SinkHarness`
as a context manager (start the real local receiver on entry, stop it on exit). The contract
suite (`test_contract.py`) discovers every such module and runs each test against each harness.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from shipper.pipeline.sink import Sink


class SinkHarness(Protocol):
    sink_type: str

    def make_sink(self, **overrides: Any) -> Sink:
        """A new sink (not yet opened) configured to reach this harness's live receiver."""

    def received_ids(self) -> list[str]:
        """Event ids the receiver has accepted so far, in arrival order, duplicates included."""

    def receiver_down(self) -> AbstractContextManager[None]:
        """Inside the block the receiver is unreachable or answers only with retryable errors."""

    def restart_receiver(self) -> None:
        """Stop and start the receiver (same address); what it received so far is kept."""

    def reject_permanently(self, event_id: str) -> bool:
        """Make the receiver refuse this event for good; False if the receiver cannot do that."""


HarnessFactory = Any  # Callable[[Path], AbstractContextManager[SinkHarness]]
__all__ = ["HarnessFactory", "Iterator", "SinkHarness"]
