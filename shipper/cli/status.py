"""`shipper status`: where each sink stands, how far behind it is, where its state lives."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import orjson

from shipper.cli.exit_codes import ExitCode
from shipper.config.settings import (
    ComplianceSourceSettings,
    Config,
    SourceSettings,
    load_config,
    sink_takes,
)
from shipper.model.event import rfc3339
from shipper.pipeline import deadletter
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.orphan_cursors import orphan_states, orphans
from shipper.source import quarantine


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return ExitCode.OK


def collect(config: Config, now: float | None = None) -> dict[str, Any]:
    """The status document (also what `status --json` prints). Never contains a secret."""
    now = time.time() if now is None else now
    return {
        "state_dir": str(config.state.dir),
        "sources": [_source(config, source, now) for source in config.all_sources],
        "orphan_states": [state.as_dict() for state in orphan_states(config)],
    }


def _source(config: Config, source: SourceSettings, now: float) -> dict[str, Any]:
    store = CursorStore(config.state.dir, source.name)
    sinks = []
    for settings in config.sinks:
        if not sink_takes(settings, source):
            continue
        cursor = store.load(settings.name)
        dead = settings.dead_letter_path or deadletter.default_path(config.state.dir, settings.name)
        sinks.append(
            {
                "name": settings.name,
                "type": settings.type,
                "cursor_file": str(store.path(settings.name)),
                "high_water": cursor.high_water if cursor else None,
                "high_water_at": rfc3339(cursor.high_water) if cursor else None,
                "lag_seconds": int(now - cursor.high_water) if cursor else None,
                "behind_retention": bool(cursor and now - cursor.high_water > source.retention),
                "seen_ids": len(cursor.seen) if cursor else 0,
                "dead_letter_file": str(dead),
                "dead_letters": _count_lines(dead),
            }
        )
    kept = quarantine.default_path(config.state.dir, source.name)
    # A compliance source runs one pipeline per event type: each has its own cursors and lag.
    event_type = (
        source.selected_event_types[0] if isinstance(source, ComplianceSourceSettings) else None
    )
    return {
        "source": source.name,
        "type": source.type,
        "event_type": event_type,
        "organization": source.organization,
        "base_url": source.base_url,
        "lookback_seconds": int(source.lookback),
        "quarantine_file": str(kept),
        "quarantined": _count_lines(kept),
        "sinks": sinks,
        "orphan_cursors": [o.as_dict(config) for o in orphans(config, source.name)],
    }


def _text(doc: dict[str, Any]) -> str:
    lines = [f"state directory: {doc['state_dir']}"]
    for source in doc["sources"]:
        org = f", organization {source['organization']}" if source["organization"] else ""
        org += f", event type {source['event_type']}" if source["event_type"] else ""
        lines += [
            "",
            f"source {source['source']} ({source['base_url']}{org})",
            f"{'SINK':<16} {'TYPE':<14} {'HIGH WATER (UTC)':<22} {'LAG':>10} {'DEAD':>6}  CURSOR FILE",
        ]
        for s in source["sinks"]:
            lag = "-" if s["lag_seconds"] is None else f"{s['lag_seconds']}s"
            lines.append(
                f"{s['name']:<16} {s['type']:<14} {s['high_water_at'] or 'never run':<22} "
                f"{lag:>10} {s['dead_letters']:>6}  {s['cursor_file']}"
                + ("  BEHIND API RETENTION: events may be lost" if s["behind_retention"] else "")
            )
        for o in source["orphan_cursors"]:
            lines.append(
                f"orphan cursor {o['name']} (high water {o['high_water_at'] or 'unreadable'}): "
                f"no configured sink has this name; if a sink was renamed: {o['fix']}"
            )
        if source.get("quarantined"):
            lines.append(
                f"QUARANTINED: {source['quarantined']} unreadable API entries in "
                f"{source['quarantine_file']} (shipper quarantine list)"
            )
    for state in doc["orphan_states"]:
        lines += [
            "",
            f"state of {state['name']} (high water {state['high_water_at'] or '-'}): "
            f"{state['meaning']}",
        ]
    return "\n".join(lines)


def show_status(config_path: Path, *, as_json: bool) -> int:
    doc = collect(load_config(config_path))
    if as_json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(_text(doc))
    return ExitCode.OK
