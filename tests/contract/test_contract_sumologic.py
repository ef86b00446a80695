"""The shipped contract suite run against the SumoLogic sink and its loopback fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from shipper.testing.contract.harness import SinkHarness
from shipper.testing.contract.suite import SinkContractSuite
from tests.contract import harness_sumologic


class TestSumoLogicSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_sumologic.make_harness(tmp_path)
