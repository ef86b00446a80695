"""The shipped contract suite (shipper.testing.contract.suite) against the Google SecOps sink and its fake."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from shipper.testing.contract.harness import SinkHarness
from shipper.testing.contract.suite import SinkContractSuite
from tests.contract import harness_secops


class TestSecOpsSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_secops.make_harness(tmp_path)
