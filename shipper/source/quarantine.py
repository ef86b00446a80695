"""The quarantine: entries the API listed that are not readable audit-log events, kept for replay.

One JSON-lines file per source, `<state.dir>/<source>/quarantine.jsonl`. Each line holds the
entry as the API sent it (`raw`, or `raw_base64` when it is not UTF-8), the reason, the window
and pass it was listed in, and the request id to quote to OpenAI. An entry is appended (fsync'd)
before its page's window reaches any sink, so no cursor moves past an entry that is not kept;
one listed again (a later cycle's lookback, a retried window) is kept once.
`shipper quarantine list|replay` reads it (see `shipper/dlq.py`).
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog

from shipper.errors import StateDamagedError
from shipper.model.event import rfc3339
from shipper.runtime.durable_files import open_append, write_all
from shipper.runtime.metrics import Metrics
from shipper.secrets import redact
from shipper.source.audit_log.parse import Defect

log = structlog.get_logger("shipper.source.quarantine")


def default_path(state_dir: Path, source: str) -> Path:
    return state_dir / source / "quarantine.jsonl"


@dataclass(frozen=True, slots=True)
class Listed:
    """Where a page was listed: its window, its pass and the API's request id; for a source
    read in parts, the part (the compliance source's log file id)."""

    start: int
    end: int
    tenant_only: bool
    request_id: str | None
    part: str | None = None
    part_time: int | None = None  # the part's cursor time, which its records are dated at


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a quarantine file."""

    line: bytes
    doc: dict[str, Any]

    @property
    def raw(self) -> bytes:
        if "raw_base64" in self.doc:
            return base64.b64decode(self.doc["raw_base64"])
        return str(self.doc.get("raw", "")).encode("utf-8")


def read_entries(path: Path, *, strict: bool = True) -> list[Entry]:
    """The file's records; a line cut short by a crash mid-append (the last) is left out.

    Any other line that is not JSON is an error, unless not `strict` (then it is skipped).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    lines = data.split(b"\n")
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            if strict and number < len(lines):  # not the unterminated last line
                raise StateDamagedError(
                    f"quarantine file {path}, line {number}: not a quarantine record; repair "
                    "or remove that line (the others are intact), then run again"
                ) from None
            continue
        entries.append(Entry(line, doc))
    return entries


def _digest(raw: bytes) -> bytes:
    return hashlib.sha256(raw).digest()


def record(source: str, defect: Defect, listed: Listed, now: float) -> bytes:
    """The JSON line that keeps `defect`."""
    doc: dict[str, Any] = {
        "time": rfc3339(int(now)),
        "source": source,
        "window_start": listed.start,
        "window_end": listed.end,
        "tenant_only": listed.tenant_only,
        "request_id": listed.request_id,
        "kind": defect.kind,
        "reason": redact(defect.reason),
        "event_id": defect.id,
    }
    if listed.part is not None:
        doc["part"], doc["part_time"] = listed.part, listed.part_time
    try:
        doc["raw"] = defect.raw.decode("utf-8")
    except UnicodeDecodeError:
        doc["raw_base64"] = base64.b64encode(defect.raw).decode("ascii")
    return orjson.dumps(doc) + b"\n"


def _cut_torn_tail(fd: int) -> None:
    """Drop a last line a crash cut short, so that the next record starts a line of its own."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if end == 0 or os.pread(fd, 1, end - 1) == b"\n":
        return
    keep = os.pread(fd, end, 0).rfind(b"\n") + 1  # rare: a whole read is fine
    os.ftruncate(fd, keep)
    log.warning("quarantine_torn_line_removed", bytes_removed=end - keep)


class Quarantine:
    """A source's quarantine file; `keep` is safe to call from every fetch thread at once."""

    def __init__(
        self,
        path: Path,
        source: str,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.source = source
        self.metrics = metrics
        self.clock = clock
        self._lock = threading.Lock()
        self._known: set[bytes] | None = None  # digests of the entries kept, read on first use

    def keep(self, defects: Sequence[Defect], listed: Listed) -> int:
        """Durably record the defects not already kept (returns after fsync); how many were new."""
        with self._lock:
            if self._known is None:
                entries = read_entries(self.path, strict=False)
                self._known = {_digest(entry.raw) for entry in entries}
            fresh: dict[bytes, Defect] = {}
            for defect in defects:
                digest = _digest(defect.raw)
                if digest not in self._known:
                    fresh.setdefault(digest, defect)
            if fresh:
                now = self.clock()
                lines = b"".join(record(self.source, d, listed, now) for d in fresh.values())
                fd = open_append(self.path)
                try:
                    _cut_torn_tail(fd)
                    write_all(fd, lines)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._known.update(fresh)
        self._report(list(fresh.values()), len(defects), listed)
        return len(fresh)

    def _report(self, fresh: list[Defect], listed_count: int, listed: Listed) -> None:
        if self.metrics is not None:
            for defect in fresh:
                self.metrics.quarantined.labels(self.source, defect.kind).inc()
        where = {
            "source": self.source,
            "window": [listed.start, listed.end],
            "tenant_only": listed.tenant_only,
            "request_id": listed.request_id,
        }
        if fresh:
            log.error(
                "entries_quarantined",
                **where,
                count=len(fresh),
                ids=[d.id for d in fresh],
                reasons=sorted({redact(d.reason) for d in fresh}),
                file=str(self.path),
                meaning="the API listed entries that are not readable audit-log events; the "
                "other events are delivered; see `shipper quarantine list`",
            )
        if listed_count > len(fresh):
            log.debug("quarantined_entries_listed_again", **where, count=listed_count - len(fresh))
