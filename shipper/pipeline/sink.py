"""The sink contract: what a destination implements, and how it is configured and registered.

A sink lives in its own module (in `sinks/` or in a third party's package) and exposes a
`SinkPlugin` under the `shipper.sinks` entry-point group::

    [project.entry-points."shipper.sinks"]
    my_sink = "my_package.my_sink:plugin"

The pipeline calls `open()` once, then for each time window `send(batch)` one or more times and
`flush()` once; only after `flush()` returns does it move the sink's cursor. So:

- `send` may return before the data is durable, but `flush` must not: it is the durability
  barrier (fsync for files, a 2xx / ack for HTTP, a written and flushed frame for stream syslog).
- A sink must tolerate receiving the same events twice (a crash between delivery and the cursor
  write re-delivers the window).
- `send` returns the events the receiver rejected *permanently*, each with a reason; the pipeline
  writes them to the sink's dead-letter file and counts them as handled.
- Transient trouble is retried inside the sink (`shipper.retry`); when retries are exhausted it
  raises `SinkRetryableError`, and when nothing can help (bad token) `SinkFatalError`. Either way the
  pipeline stops using the sink for this run and leaves its cursor where it was (recording, from
  the error's `progress`, what was settled before the failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import ConfigDict, Field, model_validator

from shipper.config.durations import Duration
from shipper.config.secret_ref import SecretFields
from shipper.model.event import AuditEvent
from shipper.pipeline.privacy import PrivacySettings


class SinkSettings(SecretFields):
    """Keys every `[[sinks]]` table accepts; a sink's own settings class extends this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(
        description="Which sink: file, syslog, webhook, splunk_hec, elasticsearch, sentinel, secops, datadog, sumologic (or a third-party sink's entry point name)."
    )
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="Unique name; keys this sink's cursor and dead-letter file.",
    )
    format: str = Field(
        default="raw",
        description="Document shape: raw, normalized, ecs, ocsf or cef (where the sink allows it).",
    )
    batch_max_events: int = Field(
        default=500, ge=1, le=100_000, description="Most events in one request or write."
    )
    batch_max_bytes: int = Field(
        default=1_000_000, ge=1024, description="Most bytes in one request or write."
    )
    retry_max_attempts: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Attempts per batch before the sink gives up this run.",
    )
    retry_max_time: Duration = Field(
        default=300.0, description="Longest time one batch is retried before giving up this run."
    )
    dead_letter_path: Path | None = Field(
        default=None,
        description="Dead-letter file (JSON lines); default <state.dir>/dead-letter/<name>.jsonl.",
    )

    sources: list[str] = Field(
        default_factory=list,
        description="Only events of these sources reach this sink (their `name`, as in [[sources]]); default: every source. A source not listed keeps no cursor for this sink.",
    )
    event_types: list[str] = Field(
        default_factory=list,
        description="Only events of these types reach this sink (exact names); the rest are skipped, not dead-lettered. Default: every type.",
    )
    privacy: PrivacySettings | None = Field(
        default=None,
        description='Fields this sink never receives as they are: `{ drop = [...], hash = [...], hash_key = { env = "VAR" } }`; see docs/privacy.md.',
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("raw", "normalized", "ecs", "ocsf", "cef")

    @model_validator(mode="after")
    def _name_the_hash_key(self) -> SinkSettings:
        # Errors about the key then name it as written in the [[sinks]] table.
        if self.privacy is not None and self.privacy.hash_key is not None:
            self.privacy.hash_key._field = "privacy.hash_key"
        return self


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event a receiver refused for good, and why (goes to the dead-letter file)."""

    event: AuditEvent
    reason: str


@dataclass(frozen=True, slots=True)
class Progress:
    """What a `send` that then failed had settled for good: acknowledged and refused events.

    A sink sets it as `SinkError.progress` only when it knows (an accepted HTTP request is
    durable); the pipeline then records them so the next attempt sends only the rest.
    """

    delivered: Sequence[AuditEvent]
    rejected: Sequence[Rejection]


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What the pipeline hands a sink when it creates it."""

    state_dir: Path
    config_path: Path | None = None


@runtime_checkable
class Sink(Protocol):
    """A destination for audit events. See the module docstring for the delivery contract."""

    name: str

    def open(self) -> None:
        """Acquire resources (files, connections). Raise a `SinkError` if it cannot start."""

    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        """Deliver `batch` (oldest first); return the permanently rejected events."""

    def flush(self) -> None:
        """Block until everything sent is durable or acknowledged downstream."""

    def close(self) -> None:
        """Release resources; must be safe to call twice and after a failed `open`."""

    def probe(self) -> str:
        """For `shipper check`: reach the receiver without sending events; return a short verdict."""


class SinkPlugin(Protocol):
    """What the `shipper.sinks` entry point refers to."""

    settings_model: type[SinkSettings]

    def create(self, settings: Any, context: SinkContext) -> Sink:
        """A new sink from validated settings (an instance of `settings_model`)."""


def batches(
    events: Sequence[AuditEvent],
    encoded: Sequence[bytes],
    *,
    max_events: int,
    max_bytes: int,
) -> list[tuple[int, int]]:
    """Split into `[start, end)` index ranges bounded by count and bytes (one event may exceed bytes)."""
    ranges: list[tuple[int, int]] = []
    start, size = 0, 0
    for index, doc in enumerate(encoded):
        if index > start and (index - start >= max_events or size + len(doc) + 1 > max_bytes):
            ranges.append((start, index))
            start, size = index, 0
        size += len(doc) + 1
    if start < len(events):
        ranges.append((start, len(events)))
    return ranges
