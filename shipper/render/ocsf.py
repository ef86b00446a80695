"""OCSF 1.8.0 events (for Amazon Security Lake, Splunk, any OCSF consumer).

Each event type has a class in the mapping table: Authentication for sign-ins, Account Change,
User Access Management and Group Management for identities, Entity Management for everything an
administrator configures. Every document carries the `cloud` profile (OpenAI as the provider,
the project as the account, the API type as `api.operation`); what OCSF has no attribute for is
kept under `unmapped`.
"""

from __future__ import annotations

from collections.abc import Callable

from shipper.model.event import AuditEvent, JsonDict
from shipper.render.fields import EventView, valid_email, view_of

OCSF_VERSION = "1.8.0"
_IAM = (3, "Identity & Access Management")
_FINDINGS = (2, "Findings")
_APPLICATION = (6, "Application Activity")
# Every class a renderer fills (audit-log events use the IAM ones; compliance records all).
CLASSES: dict[int, tuple[str, int, str]] = {
    2004: ("Detection Finding", *_FINDINGS),
    3001: ("Account Change", *_IAM),
    3002: ("Authentication", *_IAM),
    3004: ("Entity Management", *_IAM),
    3005: ("User Access Management", *_IAM),
    3006: ("Group Management", *_IAM),
    6001: ("Web Resources Activity", *_APPLICATION),
    6003: ("API Activity", *_APPLICATION),
}
SEVERITIES = {0: "Unknown", 1: "Informational", 2: "Low", 3: "Medium", 4: "High", 5: "Critical"}
STATUS = {"success": (1, "Success"), "failure": (2, "Failure")}
_USER_TYPES = {"user": (1, "User"), "service_account": (4, "Service")}
# A class's required subject, when the event does not say who or what it was.
UNKNOWN = {"name": "Unknown"}


def _actor_user(view: EventView) -> JsonDict | None:
    actor = view.actor
    uid = actor.user_id or actor.service_account_id
    if not uid and not actor.user_email:
        return None
    type_id, type_name = (4, "Service") if not actor.user_id and uid else (1, "User")
    user: JsonDict = {
        "uid": uid,
        "name": actor.user_email,
        "email_addr": valid_email(actor.user_email),
        "programmatic_credentials": (
            [{"uid": actor.api_key_id, "type": "API Key"}] if actor.api_key_id else None
        ),
        "type_id": type_id,
        "type": type_name,
    }
    return {k: v for k, v in user.items() if v is not None}


def _src_endpoint(view: EventView) -> JsonDict | None:
    if view.ip is None:
        return None
    geo = view.geo
    endpoint: JsonDict = {"ip": view.ip_text}
    if geo.country or geo.city or geo.region:
        location: JsonDict = {"country": geo.country, "city": geo.city, "region": geo.region}
        location |= {"lat": geo.lat, "long": geo.lon} if geo.lat is not None else {}
        endpoint["location"] = {k: v for k, v in location.items() if v is not None}
    if geo.asn is not None:
        endpoint["autonomous_system"] = {"number": geo.asn}
    return endpoint


def _target_user(view: EventView) -> JsonDict:
    kind = view.mapping.target.kind if view.mapping.target else "user"
    type_id, type_name = _USER_TYPES.get(kind, (1, "User"))
    user = {
        "uid": view.target_id,
        "name": view.target_email,
        "email_addr": valid_email(view.target_email),
    }
    user = {k: v for k, v in user.items() if v is not None}
    return {**user, "type_id": type_id, "type": type_name} if user else dict(UNKNOWN)


def _named(uid: str | None, name: str | None) -> JsonDict:
    found = {k: v for k, v in (("uid", uid), ("name", name)) if v is not None}
    return found or dict(UNKNOWN)


def _authentication(view: EventView, doc: JsonDict) -> None:
    doc["user"] = _actor_user(view) or dict(UNKNOWN)
    doc["service"] = {"name": "OpenAI"}


def _account_change(view: EventView, doc: JsonDict) -> None:
    doc["user"] = _target_user(view)


def _entity_management(view: EventView, doc: JsonDict) -> None:
    kind = view.mapping.target.kind if view.mapping.target else None
    entity = _named(view.target_id, view.target_name)
    if view.target_id is None and view.target_name is None and kind:
        entity = {"name": kind}
    doc["entity"] = {**entity, "type": kind} if kind else entity


def _privileges(view: EventView, doc: JsonDict) -> None:
    doc["privileges"] = list(view.target_ids)
    if view.resource_id or view.resource_type:
        resource = {"uid": view.resource_id, "type": view.resource_type}
        doc["resources"] = [{k: v for k, v in resource.items() if v is not None}]
    if view.principal_type == "group":
        doc["class_uid"] = 3006  # same activity ids: Assign / Revoke Privileges
        finish_class(doc)
        doc["group"] = _named(view.principal_id, None)
        doc["resource"] = doc.pop("resources", [None])[0]
        if doc["resource"] is None:
            del doc["resource"]
    else:
        doc["user"] = _named(view.principal_id, None)


def _group_management(view: EventView, doc: JsonDict) -> None:
    doc["group"] = _named(view.target_id, view.target_name)


_CLASS_FILLERS: dict[int, Callable[[EventView, JsonDict], None]] = {
    3001: _account_change,
    3002: _authentication,
    3004: _entity_management,
    3005: _privileges,
    3006: _group_management,
}


def _classification(view: EventView) -> JsonDict:
    mapping = view.mapping
    status_id, status = STATUS[mapping.outcome]
    doc: JsonDict = {
        "class_uid": mapping.ocsf_class_uid,
        "activity_id": mapping.ocsf_activity_id,
        "activity_name": mapping.ocsf_activity_name,
    }
    finish_class(doc)
    return doc | {
        "severity_id": mapping.severity_id,
        "severity": SEVERITIES[mapping.severity_id],
        "status_id": status_id,
        "status": status,
    }


def finish_class(doc: JsonDict) -> None:
    """Set the attributes that follow from class_uid and activity_id."""
    class_name, category_uid, category_name = CLASSES[doc["class_uid"]]
    activity = doc["activity_name"] if doc["activity_id"] != 99 else "Other"
    doc.update(
        class_name=class_name,
        category_uid=category_uid,
        category_name=category_name,
        type_uid=doc["class_uid"] * 100 + doc["activity_id"],
        type_name=f"{class_name}: {activity}",
    )


def _context(view: EventView) -> JsonDict:
    event = view.event
    cloud: JsonDict = {"provider": "OpenAI"}
    if view.project_id or view.project_name:
        account = {"uid": view.project_id, "name": view.project_name}
        cloud["account"] = {k: v for k, v in account.items() if v is not None}
    if event.organization:
        cloud["org"] = {"name": event.organization}
    return {
        "time": event.effective_at * 1000,
        "metadata": {
            "product": {"name": "Audit Logs", "vendor_name": "OpenAI"},
            "version": OCSF_VERSION,
            "uid": event.id,
            "event_code": event.type,
            "profiles": ["cloud"],
        },
        "cloud": cloud,
        "api": {"operation": event.type},
    }


def _unmapped(view: EventView) -> JsonDict:
    actor = view.actor
    target = view.mapping.target
    found = {
        "actor_type": actor.kind,
        "api_key_type": actor.api_key_kind,
        "ja3": actor.ja3,
        "ja4": actor.ja4,
        "ip_address": view.raw_ip if view.ip is None else None,
        "ip_address_details": view.geo.leftover or None,
        "actor_detail": actor.extra or None,
        "target_kind": target.kind if target else None,
        "target_ids": list(view.target_ids) if len(view.target_ids) > 1 else None,
        "principal_type": view.principal_type,
        "payload": view.payload,
        "extra": view.extra or None,
    }
    return {k: v for k, v in found.items() if v is not None}


def render_ocsf(event: AuditEvent) -> JsonDict:
    """One OCSF 1.8.0 event for one audit event."""
    view = view_of(event)
    doc = _classification(view) | _context(view)
    code, message = view.error
    optional = {
        "status_code": code,
        "status_detail": message,
        "actor": {"user": user} if (user := _actor_user(view)) else None,
        "src_endpoint": _src_endpoint(view),
        "http_request": {"user_agent": view.actor.user_agent} if view.actor.user_agent else None,
    }
    doc |= {k: v for k, v in optional.items() if v is not None}
    _CLASS_FILLERS[view.mapping.ocsf_class_uid](view, doc)
    if unmapped := _unmapped(view):
        doc["unmapped"] = unmapped
    return doc
