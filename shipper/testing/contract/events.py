"""Small, deterministic event sets for sink tests (independent of the emulator)."""

from __future__ import annotations

from typing import Any

from shipper.model.event import AuditEvent

HOSTILE = [
    "line1\nline2\r\nline3",
    "nul\x00byte and bell\x07",
    'quote " backslash \\ bracket ] pipe | equals =',
    "<134>1 2024-01-01T00:00:00Z forged - - - - injected",
    '{"index":{"_id":"forged"}}\n{"x":1}',
    "CEF:0|Evil|Corp|1|sig|name|10|src=1.2.3.4",
    "non-BMP 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀 and ümlaut",
    "x" * 2000,
]


def api_event(index: int, *, t: int = 1_720_000_000, text: str = "ok") -> dict[str, Any]:
    return {
        "id": f"audit_log-contract-{index:05d}",
        "object": "organization.audit_log",
        "type": "project.updated" if index % 3 else "login.failed",
        "effective_at": t + index,
        "actor": {
            "type": "session",
            "session": {
                "user": {"id": f"user-{index}", "email": f"u{index}@example.com"},
                "ip_address": "203.0.113.7",
                "user_agent": text,
            },
        },
        "project": {"id": "proj_abc", "name": text},
        "project.updated": {"id": "proj_abc", "changes_requested": {"title": text}},
        "login.failed": {"error_code": "invalid_password", "error_message": text},
    }


def events(count: int, *, start: int = 0, text: str = "ok") -> list[AuditEvent]:
    return [AuditEvent.from_api(api_event(start + i, text=text)) for i in range(count)]


def hostile_events() -> list[AuditEvent]:
    return [AuditEvent.from_api(api_event(900 + i, text=s)) for i, s in enumerate(HOSTILE)]
