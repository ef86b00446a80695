"""The source contract: what the pipeline needs from a place events come from.

The pipeline (`shipper.pipeline.cycle`) and the runtime (`shipper.runtime.app`) depend on this
module only; the OpenAI audit log (`shipper.source.audit_log.AuditLogClient`) is one
implementation, chosen by the `[source]` table's `type` (see `SOURCE_TYPES` in
`shipper.runtime.app`). A source promises:

- **Closed windows, completely.** Asked for `[start, end)` (whole seconds, UTC), it returns every
  event whose cursor key, `effective_at`, lies in it, whatever order the API pages in; the
  pipeline only asks for windows that ended before the source's clock (below), so a window read
  once is final up to the configured `lookback`. Events are `AuditEvent`s with an `id` unique
  within the source: the sink cursors hold the highest `effective_at` delivered and the ids seen
  at it, so re-reading a window is harmless and an event is never skipped.
- **Passes.** A window may need several reads to be complete (the audit log reads ordinary and
  tenant-scoped events separately). `passes` names them, opaquely to the pipeline, which reads a
  window's passes side by side or in turn and merges them by id. A source with one read has one
  pass.
- **Bounded memory.** Past `limit` events a pass raises `WindowOverflowError` (and sets
  `abandon`, so the window's other passes stop before their next page); the pipeline then reads
  the window in smaller pieces. A piece of one second cannot be cut: the pipeline reads it with
  `stream_pass`, in batches of about `batch` events, and hands each batch to the sinks as it
  comes (a compliance file of hundreds of MB, whose records all share its second).
- **Its clock.** `api_clock_offset()` reads the source's clock (the API's minus the local one)
  afresh at the start of each cycle; the cycle reads up to the earlier of the two, so events
  the API has not yet stamped are not skipped. None when the source cannot tell.
- **Its watermark, if it publishes one.** A source whose data is published in parts (the
  compliance source's files, listed by end time) answers `final_until(since)`: the newest time
  up to which it has published, read from `since` on. The cycle never reads past it, so a cursor
  only ever moves to a time the source itself returned, never to the local clock (a quiet feed
  leaves cursors where they are). Sources without one (the audit log) answer None.
- **Parts.** Such a source sets `Found.parts` to the parts a pass read whole (id -> time); the
  pipeline keeps them in each sink's cursor with the events and passes back, as `skip`, those
  every sink already holds: a re-read window does not download them again.
- **Errors.** Failures are `SourceError`s: `SourceUnavailableError` once retries are spent,
  `SourceRefusedError` for what retrying cannot fix (a rejected key); never a raw transport error.
- **A probe.** `probe()` answers `shipper check`: one cheap request that proves the endpoint is
  reachable and the credentials accepted, as a short verdict (no events delivered).
- **An emulator.** Each source type ships a loopback server that speaks its API from memory,
  with injectable faults (`shipper.emulator` for the audit log), so `shipper demo`, the tests and
  the benchmarks run the real client against it, never a mock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from shipper.model.event import AuditEvent
from shipper.pipeline.windows import Found
from shipper.source.quarantine import Quarantine

# What a source names its passes by (the audit log: the `tenant_only` flag); the pipeline only
# hands each back to `fetch_pass`.
PassKey = Any


@runtime_checkable
class Source(Protocol):
    """A source of events read window by window; see the module docstring for its promises."""

    requests: int  # requests made so far (for the cycle log line)
    retries: int  # of which retries
    quarantine: Quarantine | None  # where unreadable entries are kept; set by the runtime
    # Where a source may keep what it downloads while reading it (the state directory, which
    # the operator sizes; None: the system's temporary directory); set by the runtime.
    spool_dir: Path | None

    @property
    def passes(self) -> tuple[PassKey, ...]:
        """The reads that together make a window complete (at least one)."""

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
        """Every event of `[start, end)` in pass `which`, by id.

        `limit`: raise `WindowOverflowError` (and set `abandon`) past that many events.
        `sharing`: how many passes of this window are still to be read, this one included (a
        hint for foreseeing an overflow from the first page). `abandon`: give up before the next
        page once it is set (another pass overflowed). `organization`: the label carried into
        every event. `skip`: ids of parts every sink holds (sources without parts ignore it).
        """

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
        """Every event of `[start, end)` in pass `which`, in batches of at most about `batch`
        events, by id; each batch's `parts` are the parts finished with it. An id may recur in
        a later batch (the pipeline delivers it once)."""

    def fetch_window(
        self, start: int, end: int, *, organization: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        """All events of `[start, end)` from every pass, oldest first by (effective_at, id)."""

    def api_clock_offset(self) -> float | None:
        """The source's clock minus the local one, read now (seconds); None if it cannot tell."""

    def final_until(self, since: int) -> int | None:
        """The newest time (whole seconds) the source has published, reading from `since`; the
        cycle reads no further. None when the source has no watermark (bounded by the clock)."""

    def probe(self) -> str:
        """For `shipper check`: one cheap request; a short verdict, or a `SourceError`."""

    def close(self) -> None:
        """Release connections; safe to call twice."""
