"""What a sink's test harness provides so the contract suite (`suite.py`) can drive it.

A harness starts the sink's real receiver (a loopback fake, a local daemon, a directory) and
answers for it: what arrived, how to take it down, how to restart it. The suite obtains one per
test from `SinkContractSuite.make_harness(tmp_path)`, a context manager: the receiver is started
on entry and stopped on exit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
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


HarnessFactory = Callable[[Path], AbstractContextManager[SinkHarness]]
__all__ = ["HarnessFactory", "SinkHarness"]
