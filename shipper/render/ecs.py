"""Elastic Common Schema 9.4 documents (for Elasticsearch, Elastic Security, OpenSearch).

Fields ECS defines get ECS names, typed as ECS types them; everything else lives under
`openai.audit.*`, with the type-keyed payload as a value at `openai.audit.payload` (the type
string never becomes a field name). The index template in `deploy/elastic/` maps this shape.
"""

from __future__ import annotations

from typing import Any

from shipper.model.event import AuditEvent, JsonDict
from shipper.render.fields import EventView, email_domain, view_of

ECS_VERSION = "9.4.0"
_USER_TARGET_KINDS = frozenset({"user", "service_account", "invite", "workload_identity_principal"})
_GROUP_TARGET_KINDS = frozenset({"group"})


def obj_of(**fields: Any) -> JsonDict | None:
    """An object of the fields that have a value, or None when none has (no nulls, no `{}`)."""
    found = {k: v for k, v in fields.items() if v is not None}
    return found or None


def dedup(*values: str | None) -> list[str] | None:
    """The distinct non-empty values in order, or None when there are none."""
    seen = list(dict.fromkeys(v for v in values if v))
    return seen or None


def _one_or_list(values: tuple[str, ...]) -> str | list[str] | None:
    """A keyword field: one value as itself, several as an array (both index the same)."""
    if len(values) > 1:
        return list(values)
    return values[0] if values else None


def _is_user_target(view: EventView) -> bool:
    return view.mapping.target is not None and view.mapping.target.kind in _USER_TARGET_KINDS


def _event(view: EventView) -> JsonDict:
    mapping = view.mapping
    return {
        "id": view.event.id,
        "kind": "event",
        "category": list(mapping.ecs_category),
        "type": list(mapping.ecs_type),
        "action": view.event.type,
        "outcome": mapping.outcome,
        "severity": mapping.severity_id,
        "provider": "openai",
        "module": "openai",
        "dataset": "openai.audit",
    }


def _user(view: EventView) -> JsonDict | None:
    actor = view.actor
    target = None
    if _is_user_target(view):
        target = obj_of(id=view.target_id, email=view.target_email)
    elif view.principal_type == "user":
        target = obj_of(id=view.principal_id)
    return obj_of(
        id=actor.user_id,
        email=actor.user_email,
        name=actor.user_email,
        domain=email_domain(actor.user_email),
        target=target,
    )


def _group(view: EventView) -> JsonDict | None:
    if view.mapping.target and view.mapping.target.kind in _GROUP_TARGET_KINDS:
        return obj_of(id=view.target_id, name=view.target_name)
    if view.principal_type == "group":
        return obj_of(id=view.principal_id)
    return None


def _source(view: EventView) -> JsonDict | None:
    geo = view.geo
    raw_ip = view.raw_ip if isinstance(view.raw_ip, str) and view.raw_ip else None
    return obj_of(
        address=raw_ip,
        ip=view.ip_text,
        geo=obj_of(
            country_iso_code=geo.country,
            city_name=geo.city,
            region_name=geo.region,
            region_iso_code=geo.region_iso_code,
            location={"lat": geo.lat, "lon": geo.lon} if geo.lat is not None else None,
        ),
        **{"as": obj_of(number=geo.asn)},
    )


def _related(view: EventView) -> JsonDict | None:
    actor = view.actor
    users = dedup(
        actor.user_id,
        actor.user_email,
        actor.service_account_id,
        view.principal_id if view.principal_type == "user" else None,
        view.target_id if _is_user_target(view) else None,
    )
    return obj_of(ip=[view.ip_text] if view.ip_text else None, user=users)


def _openai(view: EventView) -> JsonDict:
    actor = view.actor
    payload = view.payload
    target = view.mapping.target
    found = obj_of(
        severity=view.mapping.severity,
        actor=obj_of(
            type=actor.kind,
            api_key=obj_of(id=actor.api_key_id, type=actor.api_key_kind),
            service_account=obj_of(id=actor.service_account_id),
            ja4=actor.ja4,
            ip_address_details=view.geo.leftover or None,
            detail=actor.extra or None,
        ),
        target=target
        and obj_of(
            kind=target.kind,
            id=_one_or_list(view.target_ids),
            name=_one_or_list(view.target_names),
        ),
        principal=obj_of(
            id=view.principal_id,
            type=view.principal_type,
            resource=obj_of(id=view.resource_id, type=view.resource_type),
        ),
        # flattened in the template: arbitrary payloads never add fields to the mapping.
        payload=payload if isinstance(payload, dict) or payload is None else {"value": payload},
        extra=view.extra or None,
    )
    assert found is not None  # severity is always set
    return found


def render_ecs(event: AuditEvent) -> JsonDict:
    """One ECS document for one audit event."""
    view = view_of(event)
    actor = view.actor
    code, message = view.error
    doc = {
        "@timestamp": event.timestamp,
        "ecs": {"version": ECS_VERSION},
        "event": _event(view),
        "user": _user(view),
        "group": _group(view),
        "service": obj_of(id=actor.service_account_id),
        "source": _source(view),
        "user_agent": obj_of(original=actor.user_agent),
        "tls": obj_of(client=obj_of(ja3=actor.ja3)),
        "error": obj_of(code=code, message=message),
        "organization": obj_of(name=event.organization),
        "cloud": {
            "provider": "openai",
            **({"project": p} if (p := obj_of(id=view.project_id, name=view.project_name)) else {}),
        },
        "observer": {"vendor": "OpenAI", "product": "Audit Logs"},
        "related": _related(view),
        "openai": {"audit": _openai(view)},
    }
    return {k: v for k, v in doc.items() if v is not None}
