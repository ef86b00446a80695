"""The two formats the core ships: the API object itself, and the flat normalized shape."""

from __future__ import annotations

from shipper.model.event import AuditEvent, JsonDict, normalize


def render_raw(event: AuditEvent) -> JsonDict:
    return event.raw


def render_normalized(event: AuditEvent) -> JsonDict:
    return normalize(event)
