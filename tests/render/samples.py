"""Representative API events, one per mapping family, written by hand from the API spec."""

from __future__ import annotations

from typing import Any

from shipper.model.event import AuditEvent

ORG = "acme-prod"
T = 1720804190

GEO = {
    "country": "US",
    "city": "San Francisco",
    "region": "California",
    "region_code": "CA",
    "asn": "1234",
    "latitude": "37.77490",
    "longitude": "-122.41940",
}


def session(
    email: str = "alice@example.com", ip: str = "203.0.113.7", **more: Any
) -> dict[str, Any]:
    return {
        "type": "session",
        "session": {
            "user": {"id": "user-alice", "email": email},
            "ip_address": ip,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "ja3": "a497151ce4338a12c4418c44d375173e",
            "ja4": "q13d0313h3_55b375c5d22e_c7319ce65786",
            "ip_address_details": dict(GEO),
            **more,
        },
    }


def user_key() -> dict[str, Any]:
    return {
        "type": "api_key",
        "api_key": {
            "id": "key_user_1",
            "type": "user",
            "user": {"id": "user-bob", "email": "bob@example.com"},
        },
    }


def service_key() -> dict[str, Any]:
    return {
        "type": "api_key",
        "api_key": {
            "id": "key_svc_1",
            "type": "service_account",
            "service_account": {"id": "svc_9"},
        },
    }


def api(event_type: str, payload: Any, actor: Any, n: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"audit_log-{n:04d}",
        "object": "organization.audit_log",
        "type": event_type,
        "effective_at": T + n,
        "actor": actor,
        event_type: payload,
        **extra,
    }


PROJECT = {"project": {"id": "proj_abc", "name": "Fraud detection"}}

FAMILIES: dict[str, dict[str, Any]] = {
    "auth_success": api("login.succeeded", {}, session(), 1),
    "auth_failure": api(
        "login.failed",
        {"error_code": "invalid_password", "error_message": "Wrong email or password."},
        session(ip="2001:db8::7"),
        2,
    ),
    "api_key": api(
        "api_key.created",
        {"id": "key_new", "data": {"scopes": ["api.model.request"]}},
        user_key(),
        3,
        **PROJECT,
    ),
    "user": api("user.added", {"id": "user-carol", "data": {"role": "owner"}}, session(), 4),
    "role_to_user": api(
        "role.assignment.created",
        {
            "id": "ra_1",
            "principal_id": "user-carol",
            "principal_type": "user",
            "resource_id": "proj_abc",
            "resource_type": "project",
        },
        session(),
        5,
    ),
    "role_to_group": api(
        "role.assignment.deleted",
        {"id": "ra_2", "principal_id": "group_7", "principal_type": "group"},
        session(),
        6,
    ),
    "project": api("project.archived", {"id": "proj_abc"}, service_key(), 7, **PROJECT),
    "tenant": api(
        "tenant.group.member.added",
        {"id": "group_7", "user_id": "user-carol"},
        session(),
        8,
    ),
    "list_target": api(
        "ip_allowlist.config.deactivated",
        {"configs": [{"id": "ipc_1", "name": "office"}, {"id": "ipc_2", "name": "vpn"}]},
        session(),
        9,
    ),
    "unknown_type": api("widget.frobbed", {"id": "wdg_1", "colour": "blue"}, session(), 10),
    "null_actor": api("scim.enabled", {"id": "org_1"}, None, 11),
    "unknown_actor_kind": api(
        "project.created",
        {"id": "proj_new", "data": {"name": "New", "title": "New"}},
        {"type": "workload_identity", "workload_identity": {"id": "wi_1", "issuer": "https://x"}},
        12,
    ),
}


def event(name: str) -> AuditEvent:
    return AuditEvent.from_api(FAMILIES[name], organization=ORG)
