"""`shipper dlq list|replay|purge`: inspect and re-send what a receiver refused.
`shipper quarantine list|replay`: the same for the entries the API listed that could not be read.

Replay is itself at-least-once: entries are removed from the dead-letter file only after the
sink acknowledged them (flush), and the file is rewritten atomically with what was refused again.
The state lock is held throughout, so a concurrent run cannot append meanwhile; hence `replay`
and `purge` need a follow-mode process on the same state directory stopped first (they exit 6
saying so, and touch nothing, while it runs).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shipper.cli.exit_codes import ExitCode
from shipper.config.settings import ComplianceSourceSettings, Config, SourceSettings, load_config
from shipper.errors import ConfigError, LockHeldError, StateDamagedError
from shipper.model.event import AuditEvent
from shipper.pipeline import deadletter
from shipper.pipeline.cursor_store import StateLock
from shipper.pipeline.privacy import prepare
from shipper.pipeline.sink import Rejection, SinkSettings
from shipper.runtime.app import create_sink, view_of
from shipper.runtime.durable_files import atomic_write
from shipper.source import quarantine
from shipper.source.audit_log.parse import Defect, parse_entry
from shipper.source.chatgpt_compliance.records import reread_quarantined


@dataclass(frozen=True, slots=True)
class Entry:
    line: bytes
    doc: dict[str, Any]

    @property
    def event(self) -> AuditEvent:
        return AuditEvent.from_api(self.doc["event"], self.doc.get("organization"))


def _settings(config: Config, sink: str) -> SinkSettings:
    for settings in config.sinks:
        if settings.name == sink:
            return settings
    names = ", ".join(s.name for s in config.sinks)
    raise ConfigError(f"no sink named {sink!r} (configured: {names})", path=str(config.path))


def path_of(config: Config, settings: SinkSettings) -> Path:
    return settings.dead_letter_path or deadletter.default_path(config.state.dir, settings.name)


def read_entries(path: Path) -> Iterator[Entry]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise StateDamagedError(
                f"dead-letter file {path}, line {number}: not a dead-letter record (invalid "
                "JSON); repair or remove that line (the others are intact), then run again"
            ) from None
        yield Entry(line, doc)


def list_entries(config: Config, sink: str, *, as_json: bool) -> int:
    path = path_of(config, _settings(config, sink))
    entries = list(read_entries(path))
    if as_json:
        for entry in entries:
            sys.stdout.write(entry.line.decode() + "\n")
        return ExitCode.OK
    print(f"{len(entries)} dead letter(s) in {path}")
    for entry in entries:
        doc, event = entry.doc, entry.doc.get("event", {})
        print(f"{doc.get('time')}  {doc.get('event_id')}  {event.get('type')}  {doc.get('reason')}")
    return ExitCode.OK


@contextmanager
def _state_lock(config: Config) -> Iterator[None]:
    """Hold the state lock; a clear way out when a running shipper holds it."""
    lock = StateLock(config.state.dir)
    try:
        lock.acquire()
    except LockHeldError as exc:
        raise LockHeldError(
            f"{exc}. Dead letters are changed only while no shipper runs on this state "
            "directory: stop the follow-mode process (e.g. systemctl stop shipper), run this "
            "command, then start it again"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _deliver(
    config: Config, settings: SinkSettings, events: Sequence[AuditEvent]
) -> Sequence[Rejection]:
    """Send `events` on a sink of its own, flushed; what it refused for good."""
    if not events:
        return []
    target = create_sink(config, settings)
    try:
        target.open()
        refused = target.send(events)
        target.flush()
    finally:
        target.close()
    return refused


def replay(config: Config, sink: str) -> int:
    """Re-send every dead letter; keep (rewritten) only those refused again. Exit 5 if any remain."""
    settings = _settings(config, sink)
    path = path_of(config, settings)
    with _state_lock(config):
        entries = list(read_entries(path))
        if not entries:
            print(f"nothing to replay: {path} is empty or absent")
            return ExitCode.OK
        # Entries may predate the sink's privacy rules: they are applied as in a run, and an
        # entry of a type the sink no longer takes is settled.
        send, withheld = prepare(view_of(config, settings), [e.event for e in entries])
        refused = {event.id: reason for event, reason in withheld}
        refused |= {r.event.id: r.reason for r in _deliver(config, settings, send)}
        kept = [e for e in entries if e.event.id in refused]
        atomic_write(path, b"".join(e.line + b"\n" for e in kept))
    print(
        f"replayed {len(entries) - len(kept)} of {len(entries)} to {sink}; {len(kept)} refused again"
    )
    return ExitCode.OK if not kept else ExitCode.SINK_FAILED


def purge(config: Config, sink: str, *, yes: bool) -> int:
    path = path_of(config, _settings(config, sink))
    count = sum(1 for _ in read_entries(path))
    if not yes:
        print(f"would delete {count} dead letter(s) in {path}; add --yes to do it", file=sys.stderr)
        return ExitCode.CONFIG
    with _state_lock(config):
        path.unlink(missing_ok=True)
    print(f"deleted {count} dead letter(s) from {path}")
    return ExitCode.OK


def main(
    action: str, config_path: Path, sink: str, *, as_json: bool = False, yes: bool = False
) -> int:
    config = load_config(config_path)
    if action == "list":
        return list_entries(config, sink, as_json=as_json)
    if action == "replay":
        return replay(config, sink)
    return purge(config, sink, yes=yes)


def _source(config: Config, name: str | None) -> SourceSettings:
    sources = config.all_sources
    for source in sources:
        if source.name == name or (name is None and len(sources) == 1):
            return source
    names = ", ".join(s.name for s in sources)
    what = f"no source named {name!r}" if name else "several sources: name one with --source"
    raise ConfigError(f"{what} (configured: {names})", path=str(config.path))


def list_quarantine(config: Config, source: SourceSettings, *, as_json: bool) -> int:
    path = quarantine.default_path(config.state.dir, source.name)
    entries = quarantine.read_entries(path)
    if as_json:
        for entry in entries:
            sys.stdout.write(entry.line.decode() + "\n")
        return ExitCode.OK
    print(f"{len(entries)} quarantined entr{'y' if len(entries) == 1 else 'ies'} in {path}")
    for entry in entries:
        doc = entry.doc
        print(
            f"{doc.get('time')}  {doc.get('event_id') or '-'}  [{doc.get('window_start')}, "
            f"{doc.get('window_end')})  {doc.get('request_id') or '-'}  {doc.get('reason')}"
        )
    return ExitCode.OK


def _reread(source: SourceSettings, entry: quarantine.Entry) -> AuditEvent | Defect:
    """A quarantined entry read again the way its source reads one."""
    if isinstance(source, ComplianceSourceSettings):
        event_type = source.selected_event_types[0]
        return reread_quarantined(entry.raw, entry.doc, event_type, source.organization)
    return parse_entry(entry.raw, source.organization)


def replay_quarantine(config: Config, source: SourceSettings) -> int:
    """Re-read every quarantined entry; deliver the readable ones to every sink, keep the rest.

    A sink's permanent refusals go to its dead-letter file; a sink that fails raises, and then
    nothing is removed (the next replay sends those events again: at-least-once).
    """
    path = quarantine.default_path(config.state.dir, source.name)
    with _state_lock(config):
        entries = quarantine.read_entries(path)
        if not entries:
            print(f"nothing to replay: {path} is empty or absent")
            return ExitCode.OK
        parsed = [(entry, _reread(source, entry)) for entry in entries]
        events = [event for _, event in parsed if not isinstance(event, Defect)]
        if events:
            for settings in config.sinks:
                send, withheld = prepare(view_of(config, settings), events)
                refused = [Rejection(event, reason) for event, reason in withheld]
                refused += _deliver(config, settings, send)
                deadletter.append(path_of(config, settings), settings.name, refused, time.time())
        kept = [entry for entry, event in parsed if isinstance(event, Defect)]
        atomic_write(path, b"".join(entry.line + b"\n" for entry in kept))
    sinks = ", ".join(s.name for s in config.sinks)
    print(
        f"delivered {len(events)} of {len(entries)} quarantined entries to {sinks}; "
        f"{len(kept)} still unreadable"
    )
    return ExitCode.OK if not kept else ExitCode.SINK_FAILED


def quarantine_main(
    action: str, config_path: Path, source: str | None, *, as_json: bool = False
) -> int:
    config = load_config(config_path)
    settings = _source(config, source)
    if action == "list":
        return list_quarantine(config, settings, as_json=as_json)
    return replay_quarantine(config, settings)
