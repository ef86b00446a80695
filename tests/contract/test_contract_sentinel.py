"""The shipped contract suite run against the Sentinel sink, its fake Entra ID and Logs Ingestion API."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from shipper.testing.contract.harness import SinkHarness
from shipper.testing.contract.suite import SinkContractSuite
from tests.contract import harness_sentinel


class TestSentinelSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_sentinel.make_harness(tmp_path)
