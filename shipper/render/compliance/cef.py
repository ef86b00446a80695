"""CEF:0 lines for compliance records, framed and escaped by the audit-log CEF renderer's rules.

`CEF:0|OpenAI|ChatGPT Compliance|1.0|<type>:<action>|<title>: <action>|<severity>|<extensions>`
"""

from __future__ import annotations

from shipper.model.event import AuditEvent
from shipper.render.cef import cef_line, ip_fields, labelled
from shipper.render.compliance.record import RecordView, view_of

HEADER_PREFIX = "CEF:0|OpenAI|ChatGPT Compliance|1.0|"
CUSTOM_LABELS = {
    "cs1": "workspaceId",
    "cs2": "organization",
    "cs3": "clientId",
    "cs4": "apiKeyId",
    "cs5": "ja3",
    "cs6": "model",
}


def extensions(view: RecordView) -> list[tuple[str, str | None]]:
    """The extension key/value pairs, unescaped, in output order (None = left out)."""
    actor, net = view.actor, view.network
    code, message = view.error
    custom = {
        "cs1": view.workspace_id or view.principal_id,
        "cs2": view.event.organization,
        "cs3": view.client_id,
        "cs4": actor.api_key_id,
        "cs5": net.ja3,
        "cs6": view.model,
    }
    return [
        ("rt", str(view.time_ms)),
        ("externalId", view.event.id),
        ("cat", view.record_type),
        ("act", view.action),
        ("outcome", view.outcome),
        ("suser", actor.user_email or actor.agent_name or actor.system_id),
        ("suid", actor.user_id or actor.agent_id or actor.api_key_id),
        *ip_fields(net.ip, net.ip_text),
        ("requestClientApplication", net.user_agent),
        ("dhost", net.destination),
        ("reason", message or code),
        *labelled(custom, CUSTOM_LABELS),
    ]


def compliance_cef(view: RecordView) -> str:
    action = view.action
    signature = f"{view.record_type}:{action}" if action else view.record_type
    name = f"{view.info.title}: {action}" if action else view.info.title
    severity_id = 2 if view.outcome == "failure" else 1
    return cef_line(HEADER_PREFIX, signature, name, severity_id, extensions(view))


def render_cef(event: AuditEvent) -> str:
    """One CEF line (no trailing newline) for one compliance record."""
    return compliance_cef(view_of(event))
