"""The shipped contract suite (shipper.testing.contract.suite) run against each built-in sink's real receiver."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from shipper.testing.contract.harness import SinkHarness
from shipper.testing.contract.suite import SinkContractSuite
from tests.contract import (
    harness_elasticsearch,
    harness_file,
    harness_splunk_hec,
    harness_syslog,
    harness_webhook,
)


class TestFileSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_file.make_harness(tmp_path)


class TestSyslogSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_syslog.make_harness(tmp_path)


class TestWebhookSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_webhook.make_harness(tmp_path)


class TestSplunkHecSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_splunk_hec.make_harness(tmp_path)


class TestElasticsearchSinkContract(SinkContractSuite):
    def make_harness(self, tmp_path: Path) -> AbstractContextManager[SinkHarness]:
        return harness_elasticsearch.make_harness(tmp_path)
