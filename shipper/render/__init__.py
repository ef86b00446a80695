"""Renderers: turn an `AuditEvent` into one document in a SIEM's vocabulary.

A renderer is a pure function `AuditEvent -> bytes` (one document, no trailing newline).
JSON formats also expose `AuditEvent -> dict` for sinks that embed the document in an envelope.
Formats are imported lazily so `shipper --help` stays fast.

Each source's events have their own mapping: a `ComplianceRecord` (`source_type`
"chatgpt_compliance") renders through `shipper.render.compliance`, every other event through the
audit-log renderers. `raw` is the same for both: the bytes the source received.

`occurred_ms` is when an event happened, for sinks that stamp a time of their own (a compliance
record's `effective_at` is its log file's end time, not its own), and `splunk_sourcetype` the
sourcetype `deploy/splunk/` reads it under; both reach sinks through `shipper.sink_api`.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Literal, TypeVar

import orjson

from shipper.model.event import AuditEvent, ComplianceRecord, JsonDict

Format = Literal["raw", "normalized", "ecs", "ocsf", "cef"]
FORMATS: tuple[Format, ...] = ("raw", "normalized", "ecs", "ocsf", "cef")
JSON_FORMATS: frozenset[str] = frozenset({"raw", "normalized", "ecs", "ocsf"})

DocumentRenderer = Callable[[AuditEvent], JsonDict]
Renderer = Callable[[AuditEvent], bytes]
T = TypeVar("T")


COMPLIANCE_SOURCE = ComplianceRecord.source_type


def by_source(
    audit: Callable[[AuditEvent], T], compliance: Callable[[AuditEvent], T]
) -> Callable[[AuditEvent], T]:
    """One renderer for both sources: a single class-attribute check per event picks the mapping."""

    def render(event: AuditEvent) -> T:
        if event.source_type == COMPLIANCE_SOURCE:
            return compliance(event)
        return audit(event)

    return render


def occurred_ms(event: AuditEvent) -> int:
    """When the event happened, in milliseconds since the epoch: the time a sink stamps on it
    (HEC `time`, Datadog `timestamp`, a syslog header, SecOps `logEntryTime`, Sentinel
    `TimeGenerated`, Elasticsearch's `@timestamp` fallback).

    An audit-log event happened at its `effective_at`, read from the attribute (no JSON parsed).
    A compliance record's `effective_at` is the end time of its log file, so its own time is read
    from the record as its renderings read it (`timestamp`, else `message.created_at`, else the
    COSTS hour bucket, else the file's end time): one parse of its JSON per call.
    """
    if event.source_type == COMPLIANCE_SOURCE:
        from shipper.render.compliance.record import occurred_ms as record_ms

        return record_ms(event)
    return event.effective_at * 1000


AUDIT_SOURCETYPE = "openai:audit"


def splunk_sourcetype(event: AuditEvent) -> str:
    """The Splunk sourcetype `deploy/splunk/props.conf` reads this event under: `openai:audit`
    for an audit-log event, `openai:compliance:<type in lower case>` for a compliance record
    (`openai:compliance:logs` for a type shipper does not know)."""
    if event.source_type == COMPLIANCE_SOURCE:
        from shipper.render.compliance.types import sourcetype

        return sourcetype(event.type)
    return AUDIT_SOURCETYPE


def document_renderer(fmt: str) -> DocumentRenderer:
    """The dict-producing renderer of a JSON format; `ValueError` for CEF or an unknown name."""
    if fmt == "raw":
        from shipper.render.basic import render_raw

        return render_raw
    if fmt == "normalized":
        from shipper.render import compliance
        from shipper.render.basic import render_normalized

        return by_source(render_normalized, compliance.render_normalized)
    if fmt == "ecs":
        from shipper.render import compliance
        from shipper.render.ecs import render_ecs

        return by_source(render_ecs, compliance.render_ecs)
    if fmt == "ocsf":
        from shipper.render import compliance
        from shipper.render.ocsf import render_ocsf

        return by_source(render_ocsf, compliance.render_ocsf)
    raise ValueError(f"format {fmt!r} is not a JSON format (choose one of {sorted(JSON_FORMATS)})")


def renderer(fmt: str) -> Renderer:
    """The bytes-producing renderer for any format."""
    if fmt == "cef":
        from shipper.render import compliance
        from shipper.render.cef import render_cef

        render_line = by_source(render_cef, compliance.render_cef)
        return lambda event: render_line(event).encode("utf-8")
    if fmt == "raw":
        # The API object as received, in the bytes the source already holds (attrgetter: no
        # Python frame of its own, and the sinks call this once per event).
        raw: Renderer = attrgetter("json")
        return raw
    render_doc = document_renderer(fmt)
    return lambda event: orjson.dumps(render_doc(event))
