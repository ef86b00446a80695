"""Which HTTP statuses are retried: one table, and each party's exceptions to it, status by status."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from shipper.config.settings import AuditLogSettings
from shipper.emulator import Emulator, Fault
from shipper.emulator.faults import FaultKind
from shipper.errors import SourceRefusedError
from shipper.http.sink_client import send_with_retries
from shipper.retry import (
    RETRYABLE_HTTP_STATUSES,
    RETRYABLE_STATUSES,
    SERVER_ERRORS,
    is_retryable,
    retryable_statuses,
)
from shipper.source.audit_log import client as audit_log
from shipper.source.audit_log.client import AuditLogClient
from sinks.elasticsearch.bulk import ITEM_RETRY_STATUSES, Verdict, classify
from sinks.elasticsearch.sink import ElasticsearchSink
from sinks.splunk_hec import sink as splunk_hec
from sinks.webhook import sink as webhook
from tests.conftest import KEY

# Every status some party treats specially, plus neighbours that no party retries.
PROBED = (
    *(400, 401, 403, 404, 405, 408, 409, 410, 413, 415, 422, 429),
    *(500, 501, 502, 503, 504, 505, 507, 511, 599),
)

# The promise, written out by hand: per party, the probed statuses it retries.
TABLE = {408, 429, 500, 502, 503, 504}
ANY_5XX = {500, 501, 502, 503, 504, 505, 507, 511, 599}
RETRIED = {
    "table": TABLE,
    "audit-log source": TABLE | {409},
    "HTTP sink default": TABLE,
    "elasticsearch request": TABLE,
    "elasticsearch item": ({429} | ANY_5XX),
    "webhook": TABLE | ANY_5XX,
    "splunk_hec": TABLE | ANY_5XX,
}


def _default_retry_statuses(function: Callable[..., object]) -> frozenset[int]:
    default = inspect.signature(function).parameters["retry_statuses"].default
    assert isinstance(default, frozenset)
    return default


SETS = {
    "table": RETRYABLE_STATUSES,
    "audit-log source": audit_log.RETRYABLE_STATUSES,
    "HTTP sink default": _default_retry_statuses(send_with_retries),
    "elasticsearch request": _default_retry_statuses(ElasticsearchSink._send),
    "elasticsearch item": ITEM_RETRY_STATUSES,
    "webhook": webhook.RETRY_STATUSES,
    "splunk_hec": splunk_hec.RETRY_STATUSES,
}


def test_the_table_is_pinned_and_says_why_for_each_status() -> None:
    """The shared table is exactly 408, 429, 500, 502, 503, 504, each with a reason."""
    assert set(RETRYABLE_HTTP_STATUSES) == TABLE == RETRYABLE_STATUSES
    assert all(len(why) > 20 for why in RETRYABLE_HTTP_STATUSES.values())


@pytest.mark.parametrize("party", sorted(RETRIED))
@pytest.mark.parametrize("status", PROBED)
def test_each_party_retries_exactly_its_statuses(party: str, status: int) -> None:
    """Status by status, the source and every sink retry what the pinned list says, no more."""
    assert is_retryable(status, SETS[party]) == (status in RETRIED[party])


def test_409_is_decided_once() -> None:
    """409 is retried by the source only; an Elasticsearch item's 409 on create is delivered."""
    assert 409 not in RETRYABLE_STATUSES
    assert [party for party, statuses in SETS.items() if 409 in statuses] == ["audit-log source"]
    assert classify(409, {"type": "version_conflict_engine_exception"}).verdict is (
        Verdict.ALREADY_PRESENT
    )


@pytest.mark.parametrize("status", PROBED)
def test_elasticsearch_items_follow_their_set(status: int) -> None:
    """An item is sent again exactly when its status is in the item set."""
    retried = classify(status, {"type": "x", "reason": "y"}).verdict is Verdict.RETRY
    assert retried == (status in RETRIED["elasticsearch item"])


def test_exceptions_are_a_difference_from_the_table() -> None:
    """Adding and removing work on the table; removing what it lacks is refused, not ignored."""
    assert retryable_statuses() == RETRYABLE_STATUSES
    assert retryable_statuses(add=SERVER_ERRORS) == RETRYABLE_STATUSES | SERVER_ERRORS
    assert retryable_statuses(remove={408}) == RETRYABLE_STATUSES - {408}
    with pytest.raises(ValueError, match="409"):
        retryable_statuses(remove={409})


def test_push_back_answers_are_retried() -> None:
    """The statuses that narrow the source's concurrency are among those it retries."""
    assert audit_log.PUSH_BACK <= audit_log.RETRYABLE_STATUSES


@pytest.mark.parametrize(
    ("kind", "retried"), [("409", True), ("408", True), ("429", True), ("400", False)]
)
def test_the_source_retries_by_its_set_against_the_emulator(kind: FaultKind, retried: bool) -> None:
    """A 409 from the API is retried and then succeeds; a 400 is refused at once."""
    with Emulator(api_key=KEY, events=[]) as emu:
        emu.inject(Fault(kind=kind))
        settings = AuditLogSettings(base_url=emu.base_url, retry_max_attempts=3)
        source = AuditLogClient(settings, SecretStr(KEY), sleep=lambda _: None)
        try:
            if retried:
                source.page([("limit", "1")])
                assert source.retries == 1
            else:
                with pytest.raises(SourceRefusedError, match=f"HTTP {kind}"):
                    source.page([("limit", "1")])
                assert source.retries == 0
        finally:
            source.close()
