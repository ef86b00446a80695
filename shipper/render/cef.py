"""ArcSight Common Event Format (CEF:0) lines (for ArcSight, QRadar, Sentinel, syslog SIEMs).

`CEF:0|OpenAI|Audit Log|1.0|<event type>|<name>|<severity 0-10>|<extensions>`

Framing is safe by construction: header fields escape `\\` and `|`; extension values escape `\\`,
`=`, and write CR/LF as the two-character escapes `\\r`/`\\n`; every other control character
(NUL, C0, DEL, C1, U+2028/2029) and lone surrogate is removed from both, so no event content
can end a syslog frame, add a header field or forge an extension key. Extension values are
trimmed (CEF parsers disagree about edge spaces) and empty ones left out.
"""

from __future__ import annotations

from shipper.model.event import AuditEvent
from shipper.render.fields import EventView, IPAddress, view_of

HEADER_PREFIX = "CEF:0|OpenAI|Audit Log|1.0|"
# mapping severity_id (1-5) -> CEF 0-10 (0-3 low, 4-6 medium, 7-8 high, 9-10 very high).
CEF_SEVERITY = {0: 0, 1: 1, 2: 3, 3: 5, 4: 8, 5: 10}
CUSTOM_LABELS = {
    "cs1": "projectId",
    "cs2": "organization",
    "cs3": "targetId",
    "cs4": "apiKeyId",
    "cs5": "ja3",
    "cs6": "serviceAccountId",
}

_UNSAFE = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000)]
_DROP_CONTROLS: dict[int, str | None] = dict.fromkeys(_UNSAFE)
_HEADER_ESCAPES: dict[int, str | None] = {ord("\\"): "\\\\", ord("|"): "\\|"}
_HEADER_TABLE = str.maketrans(_DROP_CONTROLS | _HEADER_ESCAPES)
_VALUE_CLEAN_TABLE = str.maketrans({k: v for k, v in _DROP_CONTROLS.items() if k not in (10, 13)})
_VALUE_TABLE = str.maketrans({"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"})


def _plain(value: str) -> bool:
    """Nothing to remove or escape (the common case; `isprintable` is false for every
    character in the drop tables, and for a few harmless ones, which then take the slow path)."""
    return value.isprintable() and "\\" not in value


def escape_header(value: str) -> str:
    """A header field: `\\` and `|` escaped, control characters removed, never empty."""
    if value and _plain(value) and "|" not in value:
        return value
    return value.translate(_HEADER_TABLE) or "unknown"


def clean_value(value: str) -> str:
    """An extension value before escaping: control characters removed, edge spaces trimmed."""
    return value.translate(_VALUE_CLEAN_TABLE).strip(" ")


def escape_value(value: str) -> str:
    if _plain(value) and "=" not in value and value[:1] != " " and value[-1:] != " ":
        return value
    return clean_value(value).translate(_VALUE_TABLE)


def ip_fields(ip: IPAddress | None, ip_text: str | None) -> list[tuple[str, str | None]]:
    """The source address: `src` for IPv4, the labelled custom `c6a2` for IPv6."""
    if ip is None:
        return []
    if ip.version == 4:
        return [("src", ip_text)]
    return [("c6a2", ip_text), ("c6a2Label", "Source IPv6 Address")]


def _custom(view: EventView) -> list[tuple[str, str | None]]:
    actor = view.actor
    values = {
        "cs1": view.project_id,
        "cs2": view.event.organization,
        "cs3": ",".join(view.target_ids) or None,
        "cs4": actor.api_key_id,
        "cs5": actor.ja3,
        "cs6": actor.service_account_id,
    }
    return labelled(values, CUSTOM_LABELS)


def labelled(values: dict[str, str | None], labels: dict[str, str]) -> list[tuple[str, str | None]]:
    """Custom extensions (`cs1`...) with their `cs1Label`, for the values that survive escaping."""
    fields: list[tuple[str, str | None]] = []
    for key, value in values.items():
        if value and escape_value(value):
            fields += [(key, value), (f"{key}Label", labels[key])]
    return fields


def extensions(view: EventView) -> list[tuple[str, str | None]]:
    """The extension key/value pairs, unescaped, in output order (None = left out)."""
    actor = view.actor
    mapping = view.mapping
    return [
        ("rt", str(view.event.effective_at * 1000)),
        ("externalId", view.event.id),
        ("cat", "/".join(mapping.ecs_category)),
        ("act", mapping.action),
        ("outcome", mapping.outcome),
        ("suser", actor.user_email),
        ("suid", actor.user_id or actor.service_account_id),
        *ip_fields(view.ip, view.ip_text),
        ("requestClientApplication", actor.user_agent),
        ("duid", view.principal_id if view.principal_type == "user" else None),
        *_custom(view),
    ]


def render_cef(event: AuditEvent) -> str:
    """One CEF line (no trailing newline) for one audit event."""
    view = view_of(event)
    mapping = view.mapping
    return cef_line(HEADER_PREFIX, event.type, mapping.title, mapping.severity_id, extensions(view))


def cef_line(
    prefix: str,
    signature: str,
    name: str,
    severity_id: int,
    pairs: list[tuple[str, str | None]],
) -> str:
    """`prefix` (vendor, product, version) + escaped header fields + the non-empty extensions."""
    header = (
        f"{prefix}{escape_header(signature)}|{escape_header(name)}|{CEF_SEVERITY[severity_id]}|"
    )
    parts = []
    for key, value in pairs:
        escaped = escape_value(value) if value else ""
        if escaped:
            parts.append(f"{key}={escaped}")
    return header + " ".join(parts)
