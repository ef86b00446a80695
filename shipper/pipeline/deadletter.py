"""Dead letters: events a receiver refused for good, kept with the reason and replayable.

One JSON-lines file per sink; each line is `{"time", "sink", "reason", "event"}` where `event`
is the API object as received. Appends are fsync'd before the sink's cursor moves past them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import orjson

from shipper.model.event import rfc3339
from shipper.pipeline.sink import Rejection
from shipper.runtime.durable_files import open_append, write_all
from shipper.secrets import redact


def default_path(state_dir: Path, sink: str) -> Path:
    return state_dir / "dead-letter" / f"{sink}.jsonl"


def append(path: Path, sink: str, rejections: Sequence[Rejection], now: float) -> None:
    """Durably record `rejections` (returns only after fsync)."""
    if not rejections:
        return
    stamp = rfc3339(int(now))
    lines = b"".join(
        orjson.dumps(
            {
                "time": stamp,
                "sink": sink,
                "reason": redact(r.reason),
                "event_id": r.event.id,
                "organization": r.event.organization,
                # The API's own bytes, not re-encoded: orjson cannot encode every object it
                # reads (nested over 254 deep), and such an event is a likely rejection.
                "event": orjson.Fragment(r.event.json),
            }
        )
        + b"\n"
        for r in rejections
    )
    fd = open_append(path)
    try:
        write_all(fd, lines)
        os.fsync(fd)
    finally:
        os.close(fd)
