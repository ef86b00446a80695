"""Shared pieces of the compliance source's tests: the emulator, a source pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from shipper.config.settings import ComplianceSourceSettings
from shipper.emulator.compliance import ORGANIZATION_EVENT_TYPES, ComplianceEmulator
from shipper.source.chatgpt_compliance.source import ComplianceSource

KEY = "sk-proj-compliance-secret-0123456789-WXYZ"
NO_GRANT = "sk-proj-compliance-nogrant-0123456789"
START = datetime(2026, 7, 20, tzinfo=UTC)
SINCE = int(START.timestamp())


@pytest.fixture
def emulator() -> Iterator[ComplianceEmulator]:
    with ComplianceEmulator(api_key=KEY, keys_without_permission={NO_GRANT}) as emu:
        yield emu


class Sleeps(list[float]):
    """A `sleep` that records each wait instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def scope_of(emu: ComplianceEmulator, event_type: str) -> str:
    if event_type in ORGANIZATION_EVENT_TYPES:
        return f"organizations/{emu.organization_id}"
    return f"workspaces/{emu.workspace_id}"


def make_source(
    emu: ComplianceEmulator,
    event_type: str = "AUTH_LOG",
    *,
    key: str = KEY,
    sleeps: Sleeps | None = None,
    **settings: Any,
) -> ComplianceSource:
    """A source of one event type against the emulator; retries never wait."""
    values: dict[str, Any] = {
        "base_url": emu.base_url,
        "scope": scope_of(emu, event_type),
        "event_types": [event_type],
        "retry_max_attempts": 4,
        **settings,
    }
    return ComplianceSource(
        ComplianceSourceSettings(**values),
        SecretStr(key),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )


def read_all(source: ComplianceSource, since: int = SINCE) -> dict[str, Any]:
    """Every record the source holds from `since` up to its watermark, by id."""
    until = source.final_until(since)
    return dict(source.fetch_pass(since, until, source.event_type))
