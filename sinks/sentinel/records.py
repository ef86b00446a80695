"""The two record shapes (profiles) and the Logs Ingestion API's documented limits.

`openai_solution` sends what Microsoft's own OpenAI connector sends to its DCR's input stream
`Custom-OpenAIAuditLogs_CL` (Azure/Azure-Sentinel, Solutions/OpenAI): the API's `id`, `type`,
`effective_at`, `actor`, `project`, the type-keyed payload as `EventDetails`, and
`friendlyName`; that DCR's transform fills the table OpenAIAuditLogs_CL, which the solution's
`OpenAIAuditLogs` parser and sample queries read (its TimeGenerated is `effective_at`, when an
audit-log event happened; the profile takes nothing else). `generic` sends a small fixed
envelope (the Logs Ingestion API drops keys the stream does not declare, so the document's own
keys cannot be columns without a DCR that names each) with the whole rendered document in one
dynamic column, and `TimeGenerated` the time the event happened (`occurred_ms`: a compliance
record's own time, not its log file's end time).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from shipper.sink_api import AuditEvent, DocumentRenderer, JsonDict, occurred_ms, rfc3339_ms

MAX_FIELD_BYTES = 64 * 1024  # documented: longer values are truncated by the service, silently

Shape = Callable[[AuditEvent], JsonDict]


def openai_solution(connector_name: str) -> Shape:
    def shape(event: AuditEvent) -> JsonDict:
        raw = event.raw
        return {
            "id": event.id,
            "type": event.type,
            "effective_at": event.effective_at,
            "actor": raw.get("actor"),
            "project": raw.get("project"),
            "EventDetails": raw.get(event.type),
            "friendlyName": connector_name,
        }

    return shape


def generic(render: DocumentRenderer) -> Shape:
    def shape(event: AuditEvent) -> JsonDict:
        return {
            "TimeGenerated": rfc3339_ms(occurred_ms(event)),
            "EventId": event.id,
            "EventType": event.type,
            "SourceType": event.source_type,
            "Event": render(event),
        }

    return shape


def oversized_fields(record: JsonDict) -> list[str]:
    """Columns whose value is over the service's 64 KB field limit (it would keep a prefix)."""
    return [
        key
        for key, value in record.items()
        if value is not None
        and len(value.encode("utf-8") if isinstance(value, str) else orjson.dumps(value))
        > MAX_FIELD_BYTES
    ]
