"""The API client against the real loopback emulator: paging, passes, retries, refusals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from shipper.config.settings import AuditLogSettings
from shipper.emulator import Emulator, Fault, is_tenant_scoped
from shipper.errors import SourceRefusedError, SourceUnavailableError
from shipper.pipeline.windows import WindowOverflowError
from shipper.source.audit_log.client import AuditLogClient
from tests.conftest import KEY, T0

_open: list[AuditLogClient] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def client(emu: Emulator, key: str = KEY, **overrides: Any) -> AuditLogClient:
    settings = AuditLogSettings(
        **{"base_url": emu.base_url, "retry_max_attempts": 4, "request_timeout": 2.0, **overrides}
    )
    made = AuditLogClient(settings, SecretStr(key), sleep=lambda _: None)
    _open.append(made)
    return made


def test_window_is_complete_and_sorted_in_either_order(emulator: Emulator) -> None:
    """Fetching a closed window returns every event in it exactly once, oldest first, whatever the API's order."""
    c = client(emulator)
    events = c.fetch_window(T0 - 86400, T0)
    expected = [e for e in emulator.events() if T0 - 86400 <= e["effective_at"] < T0]
    assert [e.id for e in events] == [e["id"] for e in expected]
    assert c.requests > 2  # it really paged


def test_both_tenant_passes_together_are_everything(emulator: Emulator) -> None:
    """The ordinary and the tenant_only pass partition the events; a complete export makes both."""
    both = client(emulator).fetch_window(T0 - 3 * 86400, T0)
    ordinary = client(emulator, include_tenant_events=False).fetch_window(T0 - 3 * 86400, T0)
    assert len(both) == len(emulator.events())
    assert all(not is_tenant_scoped(e.type) for e in ordinary)
    assert {e.id for e in both} - {e.id for e in ordinary} == {
        e["id"] for e in emulator.events() if is_tenant_scoped(e["type"])
    }


@pytest.mark.parametrize(
    "kind",
    [
        "429",
        "500",
        "502",
        "503",
        "504",
        "408",
        "409",
        "truncated",
        "concatenated",
        "html200",
        "reset",
    ],
)
def test_every_retry_class_is_retried(emulator: Emulator, kind: str) -> None:
    """Transient statuses, garbled bodies and dropped connections are retried and the window still completes."""
    emulator.inject(Fault(kind=kind, count=2, retry_after="1" if kind == "429" else None))  # type: ignore[arg-type]
    c = client(emulator)
    events = c.fetch_window(T0 - 86400, T0)
    assert len(events) == len(
        [e for e in emulator.events() if T0 - 86400 <= e["effective_at"] < T0]
    )
    assert c.retries == 2


def test_timeouts_are_retried(emulator: Emulator) -> None:
    """A request that outlives the timeout is retried."""
    emulator.inject(Fault(kind="timeout", delay=1.5))
    c = client(emulator, request_timeout=0.5)
    assert c.fetch_window(T0 - 3600, T0) is not None
    assert c.retries == 1


def test_retry_after_is_honoured() -> None:
    """The wait before retrying a 429 is at least its Retry-After."""
    with Emulator(api_key=KEY, events=[]) as emu:
        emu.inject(Fault(kind="429", retry_after="3"))
        slept: list[float] = []
        settings = AuditLogSettings(base_url=emu.base_url)
        c = AuditLogClient(settings, SecretStr(KEY), sleep=slept.append)
        _open.append(c)
        c.fetch_window(T0 - 60, T0)
        assert slept and slept[0] >= 3


def test_exhausted_retries_say_what_failed(emulator: Emulator) -> None:
    """When the API keeps failing, the error says so and names the last failure."""
    emulator.inject(Fault(kind="503", count=50))
    with pytest.raises(SourceUnavailableError, match="HTTP 503"):
        client(emulator).fetch_window(T0 - 3600, T0)


def test_401_says_the_key_is_wrong_and_hides_it(emulator: Emulator) -> None:
    """A rejected key ends at once with advice, and the key never appears in the message."""
    wrong = "sk-admin-WRONGWRONGWRONG-9876"
    c = client(emulator, key=wrong)
    with pytest.raises(SourceRefusedError) as info:
        c.fetch_window(T0 - 3600, T0)
    message = str(info.value)
    assert "HTTP 401" in message and "wrong, revoked" in message and "OPENAI_ADMIN_KEY" in message
    assert wrong not in message and "WRONGWRONG" not in message
    assert c.requests == 1


def test_403_points_at_permission_or_organization_settings() -> None:
    """403 explains the two causes: a key without the audit-log permission, or logging not enabled."""
    with Emulator(api_key=KEY, events=[], audit_logging_enabled=False) as emu:
        with pytest.raises(SourceRefusedError, match="Organization Settings") as info:
            client(emu).fetch_window(T0 - 60, T0)
        assert "HTTP 403" in str(info.value)


def test_request_id_is_logged_on_retries(emulator: Emulator) -> None:
    """Retried failures carry the x-request-id so the operator can quote it to support."""
    emulator.inject(Fault(kind="500"))
    with capture_logs() as logs:
        client(emulator).fetch_window(T0 - 3600, T0)
    retry_logs = [entry for entry in logs if entry["event"] == "retrying"]
    assert retry_logs and "x-request-id req_" in retry_logs[0]["reason"]


def test_overfull_window_is_reported_for_splitting(emulator: Emulator) -> None:
    """A window holding more events than allowed raises WindowOverflowError instead of growing memory."""
    with pytest.raises(WindowOverflowError):
        client(emulator).fetch_window(T0 - 3 * 86400, T0, limit=50)


def test_filters_are_sent(emulator: Emulator) -> None:
    """Configured filters reach the API (only matching events come back)."""
    wanted = sorted({e["type"] for e in emulator.events() if not is_tenant_scoped(e["type"])})[:2]
    events = client(emulator, event_types=wanted, include_tenant_events=False).fetch_window(
        T0 - 3 * 86400, T0
    )
    assert events and {e.type for e in events} <= set(wanted)


def test_a_429_lowers_the_requests_in_flight_and_clean_answers_restore_them(
    emulator: Emulator,
) -> None:
    """The operator sees the narrowing (a warning and the gauge) and its end (an info line)."""
    from shipper.runtime.metrics import Metrics

    metrics = Metrics()
    settings = AuditLogSettings(base_url=emulator.base_url, concurrency=4, retry_max_attempts=4)
    c = AuditLogClient(settings, SecretStr(KEY), sleep=lambda _: None, metrics=metrics)
    _open.append(c)

    def allowed() -> float | None:
        labels = {"source": settings.name}
        return metrics.registry.get_sample_value("shipper_api_requests_in_flight_limit", labels)

    assert allowed() == 4
    emulator.inject(Fault(kind="429"))
    with capture_logs() as logs:
        c.fetch_window(T0 - 3 * 86400, T0)  # pages one at a time: 2, then 3 and 4 in turn
    lowered = [e for e in logs if e["event"] == "api_concurrency_lowered"]
    restored = [e for e in logs if e["event"] == "api_concurrency_restored"]
    assert len(lowered) == 1 and lowered[0]["requests_in_flight"] == 2
    assert "HTTP 429" in lowered[0]["reason"]
    assert len(restored) == 1 and restored[0]["requests_in_flight"] == 4
    assert allowed() == 4
    assert c.requests >= 1 + 2 + 3  # the clean answers it took: two at width 2, three at 3


def test_failed_requests_give_their_slot_back(emulator: Emulator) -> None:
    """With one request allowed in flight, resets and 500s are retried to the end: a slot kept
    by a failed request would leave every retry waiting forever."""
    c = client(emulator, concurrency=1, retry_max_attempts=6)
    emulator.inject(Fault(kind="reset", count=2))
    emulator.inject(Fault(kind="500", count=2))
    fetched: list[int] = []
    worker = threading.Thread(
        target=lambda: fetched.append(len(c.fetch_window(T0 - 3600, T0))), daemon=True
    )
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive() and fetched, "a retry is still waiting for a slot"
    assert c.retries == 4
