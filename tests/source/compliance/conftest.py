"""Shared pieces of the compliance source's tests: the emulator, a source pointed at it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from shipper.config.settings import ComplianceSourceSettings
from shipper.emulator.compliance import ORGANIZATION_EVENT_TYPES, ComplianceEmulator
from shipper.source.chatgpt_compliance.source import ComplianceSource
from shipper.source.quarantine import Quarantine
from shipper.testing.receivers.base import Receiver, Recorded, Reply

KEY = "sk-proj-compliance-secret-0123456789-WXYZ"
NO_GRANT = "sk-proj-compliance-nogrant-0123456789"
WORKSPACE = "3f2b8c1d-7a4e-4c55-9e21-6d0b5a9c4e10"
START = datetime(2026, 7, 20, tzinfo=UTC)
SINCE = int(START.timestamp())


@pytest.fixture(autouse=True)
def _logging_as_before() -> Iterator[None]:
    """`main()` configures logging onto the stream of its test, which pytest closes after it."""
    config = structlog.get_config()
    yield
    structlog.configure(**config)


_made: list[ComplianceSource] = []


@pytest.fixture(autouse=True)
def _sources_closed() -> Iterator[None]:
    """Close every source a test made, as the runtime does: a source keeps the files it read."""
    yield
    while _made:
        _made.pop().close()


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
    source = ComplianceSource(
        ComplianceSourceSettings(**values),
        SecretStr(key),
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    _made.append(source)
    return source


def read_all(source: ComplianceSource, since: int = SINCE) -> dict[str, Any]:
    """Every record the source holds from `since` up to its watermark, by id."""
    until = source.final_until(since)
    return dict(source.fetch_pass(since, until, source.event_type))


class HandmadeFiles:
    """A compliance API on one loopback port serving given bodies: listing, 307, storage."""

    def __init__(self, bodies: list[bytes], location: Callable[[str], str] | None = None) -> None:
        self.bodies = {f"eclf_{n:032x}": body for n, body in enumerate(bodies)}
        self.location = location
        self.requests: list[Recorded] = []
        self.url = ""
        self.download_status = 307  # 200: the API serves the body itself; else an error

    def __call__(self, request: Recorded) -> Reply:
        self.requests.append(request)
        prefix = f"/v1/compliance/workspaces/{WORKSPACE}/logs"
        if request.path == prefix:
            data = [
                {
                    "id": file_id,
                    "event_type": "AUTH_LOG",
                    "end_time": f"2026-07-20T00:0{n}:00.000000Z",
                    "file_size": len(body),
                    "file_sha256": hashlib.sha256(body).hexdigest().upper(),
                }
                for n, (file_id, body) in enumerate(self.bodies.items())
            ]
            last = data[-1]["end_time"] if data else None
            return Reply.json(200, {"data": data, "has_more": False, "last_end_time": last})
        if request.path.startswith(prefix + "/"):
            file_id = request.path.rsplit("/", 1)[1]
            if self.download_status == 200:
                return Reply(200, self.bodies[file_id])
            if self.download_status != 307:
                return Reply.json(self.download_status, {"error": {"message": "No log file."}})
            target = self.location(file_id) if self.location else f"{self.url}/blob/{file_id}"
            return Reply(307, b"", {"location": target + "?sig=s3cr3t-signature"})
        if request.path.startswith("/blob/"):
            return Reply(200, self.bodies[request.path.removeprefix("/blob/")])
        return Reply(404, b"{}")


@pytest.fixture
def handmade() -> Iterator[Callable[..., tuple[HandmadeFiles, str]]]:
    receivers: list[Receiver] = []

    def serve(
        bodies: list[bytes], location: Callable[[str], str] | None = None
    ) -> tuple[HandmadeFiles, str]:
        api = HandmadeFiles(bodies, location)
        receiver = Receiver(api)
        receiver.start()
        receivers.append(receiver)
        api.url = receiver.url
        return api, f"{receiver.url}/v1/compliance"

    yield serve
    for receiver in receivers:
        receiver.stop()


def handmade_source(base_url: str, tmp_path: Path | None = None) -> ComplianceSource:
    settings = ComplianceSourceSettings(
        base_url=base_url,
        scope=f"workspaces/{WORKSPACE}",
        event_types=["AUTH_LOG"],
        retry_max_attempts=2,
    )
    source = ComplianceSource(settings, SecretStr(KEY), sleep=Sleeps())
    _made.append(source)
    if tmp_path is not None:
        source.quarantine = Quarantine(tmp_path / "quarantine.jsonl", "q")
    return source
