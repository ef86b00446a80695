"""The pipeline depends on the source contract (shipper.source.contract), not on the audit log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from pydantic import SecretStr

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import AuditLogSettings, SourceSettings, load_config
from shipper.model.event import AuditEvent
from shipper.pipeline.windows import Found, assemble, overflow_error
from shipper.runtime import app
from shipper.runtime.metrics import Metrics
from shipper.source.audit_log.client import AuditLogClient
from shipper.source.contract import PassKey, Source
from shipper.source.quarantine import Quarantine
from shipper.testing.contract.events import api_event
from tests.conftest import KEY, config_text, write_config


class ListSource:
    """A second kind of source: events from a list, in two passes keyed by name, no clock of its own."""

    passes = ("even", "odd")

    def __init__(self, events: list[AuditEvent]) -> None:
        self.events = events
        self.requests = 0
        self.retries = 0
        self.quarantine: Quarantine | None = None
        self.spool_dir: Path | None = None
        self.closed = False

    def fetch_pass(
        self,
        start: int,
        end: int,
        which: PassKey,
        /,
        *,
        limit: int | None = None,
        organization: str | None = None,
        sharing: int = 1,
        abandon: threading.Event | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Found:
        self.requests += 1
        parity = self.passes.index(which)
        found = Found(
            (e.id, e)
            for i, e in enumerate(self.events)
            if i % 2 == parity and start <= e.effective_at < end
        )
        if limit is not None and len(found) > limit:
            if abandon is not None:
                abandon.set()
            raise overflow_error(f"more than {limit} events in one pass", found)
        return found

    def stream_pass(
        self,
        start: int,
        end: int,
        which: PassKey,
        /,
        *,
        batch: int,
        organization: str | None = None,
        skip: frozenset[str] = frozenset(),
    ) -> Iterator[Found]:
        found = list(self.fetch_pass(start, end, which).items())
        for at in range(0, max(len(found), 1), batch):
            yield Found(found[at : at + batch])

    def fetch_window(
        self, start: int, end: int, *, organization: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        return assemble([self.fetch_pass(start, end, p) for p in self.passes], limit)

    def api_clock_offset(self) -> float | None:
        return None

    def final_until(self, since: int) -> int | None:
        return None

    def probe(self) -> str:
        return f"{len(self.events)} events in memory"

    def close(self) -> None:
        self.closed = True


def test_the_audit_log_client_implements_the_source_contract() -> None:
    """AuditLogClient is one implementation of Source (checked statically by mypy, here at run time)."""
    client = AuditLogClient(AuditLogSettings(), SecretStr(KEY))
    try:
        assert isinstance(client, Source)
    finally:
        client.close()


def test_a_source_type_is_chosen_from_the_config() -> None:
    """`[source] type` picks the client; "audit_log" (the default) is the audit-log client."""
    assert AuditLogSettings().type == "audit_log"
    assert set(app.SOURCE_TYPES) == {"audit_log", "chatgpt_compliance"}


def test_a_second_source_runs_through_the_pipeline_to_a_file_sink(
    tmp_path: Path, admin_key: str
) -> None:
    """A source that is not the audit log (opaque pass keys, no API clock) ships every event it holds to a file sink, once."""
    now = int(time.time())
    events = [AuditEvent.from_api(api_event(i, t=now - 7200 + 37 * i)) for i in range(150)]
    source = ListSource(events)
    made: list[SourceSettings] = []

    def connect(settings: SourceSettings, metrics: Metrics | None) -> Source:
        made.append(settings)
        return source

    config = load_config(
        write_config(tmp_path, config_text("http://127.0.0.1:9", tmp_path, start_at=now - 86400))
    )
    outcome = app.run(config, once=True, client_factory=connect)
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert [s.name for s in made] == ["default"]
    lines = (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == [e.id for e in events]
    assert source.closed
