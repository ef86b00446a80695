"""ECS 9.4 documents for compliance records, with the field choices of Elastic's integration.

Where Elastic's `openai_chatgpt_enterprise` package maps a record field to ECS, the same ECS
field is used (`source.ip`, `source.geo.*`, `user_agent.original`, `tls.client.ja3`,
`user.email`, `user.id`, `gen_ai.*`, `vulnerability.*`, ...), so its users' searches work on
these documents. The record, less `event_id`/`type`/`timestamp`, is kept under
`openai_chatgpt_enterprise.<stream>` (Elastic's namespace; `other` for types new to us, with the
type as a value), so nothing is lost. Elastic's `gen_ai.*` fields that ECS 9.4 does not define
(messages, tool arguments) are not emitted: the content stays in the vendor namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shipper.model.event import AuditEvent, JsonDict
from shipper.render.compliance.record import (
    RecordView,
    as_dict,
    dig,
    integer,
    text,
    view_of,
)
from shipper.render.compliance.types import VENDOR_ROOT, verb_of
from shipper.render.ecs import ECS_VERSION, dedup, obj_of
from shipper.render.fields import email_domain

_IDENTITY_WORDS = frozenset({"USER", "ROLE", "INVITE", "MEMBER", "ACCOUNT", "SESSION", "SCIM"})
# A verb as an event.type, per category family (iam and authentication have no `access`).
_VERB_TYPES = {"create": "creation", "delete": "deletion", "read": "info"}
_API_VERB_TYPES = _VERB_TYPES | {"read": "access"}
_CHAT_EVENTS = frozenset({"PROMPT_RESPONSE_RECEIVED", "TOOL_CALL_COMPLETED", "APP_MCP_CALL"})
_AGENT_CHAT_PREFIXES = ("AGENT_RUN", "CONNECTOR_", "SKILL_", "MEMORY_")
_MAX_INTEGER = 2**31 - 1  # ECS `integer` fields are 32-bit in Elasticsearch


def _verb_type(view: RecordView, table: dict[str, str]) -> str:
    verb = verb_of(view.action)
    return table.get(verb, "change") if verb else "info"


Classes = tuple[str, list[str], list[str]]  # event.kind, event.category, event.type


def _audit_classes(view: RecordView) -> Classes:
    if view.action is None:
        return "event", ["iam"], ["info"]
    words = set(view.action.upper().split("_"))
    types = [_verb_type(view, _VERB_TYPES)]
    if "GROUP" in words:
        return "event", ["iam"], [*types, "group"]
    if words & _IDENTITY_WORDS:
        return "event", ["iam"], [*types, "user"]
    # Elastic files every admin action under iam; configuration says what most of them are.
    return "event", ["iam", "configuration"], types


def _auth_classes(view: RecordView) -> Classes:
    lowered = (view.action or "").lower()
    kind = "start" if lowered.startswith("login") else "info"
    return "event", ["authentication"], ["end" if lowered.startswith("logout") else kind]


def _security_classes(view: RecordView) -> Classes:
    if text(view.details, "finding_id"):
        return "event", ["vulnerability"], ["info"]
    return "event", ["vulnerability", "configuration"], ["info", _verb_type(view, _VERB_TYPES)]


def _api_classes(view: RecordView) -> Classes:
    return "event", ["api"], [_verb_type(view, _API_VERB_TYPES)]


def _fixed(kind: str, category: list[str], types: list[str]) -> Callable[[RecordView], Classes]:
    return lambda _view: (kind, list(category), list(types))


_CLASSIFIERS: dict[str, Callable[[RecordView], Classes]] = {
    "AUTH_LOG": _auth_classes,
    "AUDIT_LOG": _audit_classes,
    "APP_AUTH_LOG": _fixed("event", ["configuration"], ["change"]),
    "APP_LOG": _fixed("event", ["api"], ["access"]),
    "CODEX_LOG": _api_classes,
    "CODEX_SECURITY_LOG": _security_classes,
    "CUSTOM_AGENTS_LOG": _api_classes,
    "CHATGPT_PLUGIN_SPREADSHEET": _api_classes,
    # hourly usage aggregates: measurements, not events
    "COSTS": _fixed("metric", [], []),
}
# Conversation messages and unknown types: no ECS category fits.
_NO_CATEGORY = _fixed("event", [], [])


def classify(view: RecordView) -> Classes:
    """(event.kind, event.category, event.type) of a record."""
    return _CLASSIFIERS.get(view.record_type, _NO_CATEGORY)(view)


def _event(view: RecordView) -> JsonDict:
    kind, categories, types = classify(view)
    details = view.details
    reason = text(details, "delete_reason") or text(details, "failure_message")
    return {
        k: v
        for k, v in {
            "id": view.event.id,
            "kind": kind,
            "category": categories or None,
            "type": types or None,
            "action": view.action.lower() if view.action else None,
            "outcome": view.outcome,
            "reason": reason,
            "provider": "openai",
            "module": VENDOR_ROOT,
            "dataset": f"{VENDOR_ROOT}.{view.info.stream}",
        }.items()
        if v is not None
    }


def _identity(view: RecordView) -> tuple[str | None, str | None, str | None]:
    """(id, email, full name) of the user the record is about: the actor, or for COSTS the
    user whose usage the bucket counts."""
    actor = view.actor
    if actor.user_id or actor.user_email:
        return actor.user_id, actor.user_email, None
    identity = dig(view.raw, "payload", "identity")
    return text(identity, "user_id"), text(identity, "email"), text(identity, "name")


def _target(view: RecordView) -> tuple[str | None, str | None]:
    if view.record_type != "AUDIT_LOG":
        return None, None
    data = view.details
    emails = data.get("email_addresses")
    first_email = emails[0] if isinstance(emails, list) and emails else None
    email = text(data, "new_owner_email") or text(data, "email_address") or text(first_email)
    return text(data, "user_id"), email


def _user(view: RecordView) -> JsonDict | None:
    user_id, email, full_name = _identity(view)
    target_id, target_email = _target(view)
    return obj_of(
        id=user_id,
        email=email,
        name=email,
        full_name=full_name,
        domain=email_domain(email),
        target=obj_of(id=target_id, email=target_email),
    )


def _source(view: RecordView) -> JsonDict | None:
    net = view.network
    geo = net.geo
    return obj_of(
        address=net.raw_ip,
        ip=net.ip_text,
        geo=obj_of(
            country_iso_code=geo.country,
            city_name=geo.city,
            region_name=geo.region,
            region_iso_code=geo.region_iso_code,
            location={"lat": geo.lat, "lon": geo.lon} if geo.lat is not None else None,
        ),
        **{"as": obj_of(number=geo.asn)},
    )


def _bounded(value: Any) -> int | None:
    number = integer(value)
    return number if number is not None and 0 <= number <= _MAX_INTEGER else None


def _operation(view: RecordView) -> str | None:
    action = (view.action or "").upper()
    if view.record_type == "CONVERSATION_MESSAGE":
        return "chat"
    if view.record_type == "CODEX_LOG" and action in _CHAT_EVENTS:
        return "chat"
    if view.record_type == "CUSTOM_AGENTS_LOG" and action.startswith(_AGENT_CHAT_PREFIXES):
        return "chat"
    return None


def _tool(view: RecordView) -> JsonDict | None:
    details = view.details
    agents = view.record_type == "CUSTOM_AGENTS_LOG"
    name = text(details, "tool_name") or text(details, "name")
    if agents:
        name = text(details, "connector_name") or text(details, "skill_name")
    if view.record_type not in ("CODEX_LOG", "CUSTOM_AGENTS_LOG"):
        return None
    return obj_of(
        name=name,
        type=text(details, "tool_type") or ("extension" if agents and name else None),
        call=obj_of(id=text(details, "tool_call_id") or text(details, "call_id")),
    )


def _usage(view: RecordView) -> JsonDict | None:
    if view.record_type == "COSTS":
        usage = dig(view.details, "measures", "usage")
        return obj_of(
            input_tokens=_bounded(dig(usage, "text_input_tokens")),
            output_tokens=_bounded(dig(usage, "text_output_tokens")),
        )
    usage = view.details.get("token_usage")
    return obj_of(
        input_tokens=_bounded(dig(usage, "input_tokens")),
        output_tokens=_bounded(dig(usage, "output_tokens")),
    )


def _agent(view: RecordView) -> JsonDict | None:
    details, actor = view.details, view.actor
    fields = details.get("agent_fields")
    agent_id = (
        text(details, "agent_id")
        or text(details, "gpt_id")
        or text(details, "third_party_gizmo_id")
        or actor.agent_product_id
    )
    return obj_of(
        id=agent_id,
        name=text(fields, "name") or actor.agent_name,
        description=text(fields, "description"),
    )


def _gen_ai(view: RecordView) -> JsonDict:
    details = view.details
    conversation = view.record_type == "CONVERSATION_MESSAGE"
    assistant = conversation and text(details, "author", "type") == "assistant"
    has_text = text(details, "response_text") or text(details, "prompt_text")
    output_type = text(details, "content", "type") if conversation else None
    found = obj_of(
        system="openai",
        operation=obj_of(name=_operation(view)),
        request=obj_of(model=view.model),
        response=obj_of(model=view.model, id=text(details, "id") if assistant else None),
        output=obj_of(type=output_type or ("text" if has_text else None)),
        tool=_tool(view),
        usage=_usage(view),
        agent=_agent(view),
    )
    assert found is not None  # system is always set
    return found


def _vulnerability(view: RecordView) -> JsonDict | None:
    if view.record_type != "CODEX_SECURITY_LOG":
        return None
    finding = text(view.details, "finding_id")
    return obj_of(
        id=finding,
        severity=text(view.details, "updated_fields", "criticality"),
        scanner=obj_of(vendor="OpenAI") if finding else None,
    )


def _hosts(view: RecordView) -> list[str] | None:
    data = view.details if view.record_type == "AUDIT_LOG" else {}
    domains = data.get("domains")
    domains = [d for d in domains if isinstance(d, str)] if isinstance(domains, list) else []
    return dedup(view.network.destination, text(data, "hostname"), *domains)


def _related(view: RecordView, user: JsonDict | None) -> JsonDict | None:
    user = user or {}
    target = as_dict(user.get("target"))
    ip = view.network.ip_text
    return obj_of(
        ip=[ip] if ip else None,
        user=dedup(user.get("id"), user.get("email"), target.get("id"), target.get("email")),
        hosts=_hosts(view),
    )


def _message(view: RecordView) -> str | None:
    if view.record_type != "CONVERSATION_MESSAGE":
        return None
    value = dig(view.details, "content", "value")
    return value if isinstance(value, str) and value else None


def vendor_fields(view: RecordView, message: str | None) -> JsonDict:
    """The record under Elastic's namespace, less what the document already says elsewhere."""
    kept = {k: v for k, v in view.raw.items() if k not in ("event_id", "type", "timestamp")}
    if not view.info.known:
        kept["type"] = view.record_type
    if message is not None:  # the text is `message`; storing it twice doubles the largest field
        content = {k: v for k, v in view.details["content"].items() if k != "value"}
        kept["message"] = {**kept["message"], "content": content}
    if view.time_source != "timestamp":
        kept["time_source"] = view.time_source
    return {view.info.stream: kept}


def compliance_ecs(view: RecordView) -> JsonDict:
    net = view.network
    code, error_message = view.error
    message = _message(view)
    user = _user(view)
    doc = {
        "@timestamp": view.timestamp,
        "ecs": {"version": ECS_VERSION},
        "event": _event(view),
        "message": message,
        "user": user,
        "group": obj_of(id=text(view.details, "group_id"))
        if view.record_type == "AUDIT_LOG"
        else None,
        "source": _source(view),
        "destination": obj_of(domain=net.destination),
        "user_agent": obj_of(original=net.user_agent),
        "tls": obj_of(client=obj_of(ja3=net.ja3)),
        "url": obj_of(full=text(view.details, "pr_url") or text(view.details, "url")),
        "error": obj_of(code=code, message=error_message),
        "organization": obj_of(
            id=view.workspace_id or view.principal_id, name=view.event.organization
        ),
        "gen_ai": _gen_ai(view),
        "vulnerability": _vulnerability(view),
        "observer": {"vendor": "OpenAI", "product": "ChatGPT Enterprise"},
        "related": _related(view, user),
        VENDOR_ROOT: vendor_fields(view, message),
    }
    return {k: v for k, v in doc.items() if v is not None}


def render_ecs(event: AuditEvent) -> JsonDict:
    """One ECS document for one compliance record."""
    return compliance_ecs(view_of(event))
