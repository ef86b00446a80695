"""The two formats the core ships: the API object itself, and the flat normalized shape."""

from __future__ import annotations

from shipper.model import AuditEvent, JsonDict, normalize


def render_raw(event: AuditEvent) -> JsonDict:
    return event.raw


def raw_json(event: AuditEvent) -> bytes:
    """The `raw` format as bytes: the API object's JSON as held (never decoded and re-encoded)."""
    return event.json


def render_normalized(event: AuditEvent) -> JsonDict:
    return normalize(event)
