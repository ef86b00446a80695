"""OCSF 1.8.0 events for compliance records.

Classes per type (docs/formats.md): sign-ins are Authentication (3002); admin actions are User
Access Management (3005, role changes), Account Change (3001, users and invites), API Activity
(6003, reads such as the Compliance API's own list and download calls) or Entity Management
(3004, everything configured); app link/unlink and agent, trigger and scan-configuration
lifecycle are Entity Management; app calls are Web Resources Activity (6001); Codex Security
findings are Detection Findings (2004); everything else (Codex, agent runs, conversation
messages, usage, unknown types) is API Activity. Every event carries the `cloud` profile, and
`ai_operation` when a model is named; the record's type-specific content is kept in `unmapped`.
"""

from __future__ import annotations

from collections.abc import Callable

from shipper.model.event import AuditEvent, JsonDict
from shipper.render.compliance.record import RecordView, text, view_of
from shipper.render.compliance.types import verb_of
from shipper.render.fields import valid_email
from shipper.render.ocsf import OCSF_VERSION, SEVERITIES, STATUS, UNKNOWN, finish_class

Activity = tuple[int, int, str]  # class_uid, activity_id, activity_name

# verb -> activity id, per class (OCSF 1.8.0 enums); a verb a class lacks is Other (99).
_ACTIVITIES: dict[int, dict[str, tuple[int, str]]] = {
    3001: {"create": (1, "Create"), "enable": (2, "Enable"), "disable": (5, "Disable")}
    | {"delete": (6, "Delete")},
    3004: {"create": (1, "Create"), "read": (2, "Read"), "update": (3, "Update")}
    | {"delete": (4, "Delete"), "enable": (8, "Enable"), "disable": (9, "Disable")},
    3005: {"delete": (2, "Revoke Privileges")},
    6003: {"create": (1, "Create"), "read": (2, "Read"), "update": (3, "Update")}
    | {"delete": (4, "Delete")},
}
_ENTITY_DEFAULT = {3004: (3, "Update"), 3005: (1, "Assign Privileges")}
_IDENTITY_WORDS = frozenset({"USER", "INVITE", "MEMBER", "ACCOUNT"})
_LIFECYCLE_PREFIXES = ("AGENT_CREATED", "AGENT_UPDATED", "AGENT_PUBLISHED", "AGENT_DELETED")
_CRITICALITY = {"informational": 1, "info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
# Codex Security finding status -> OCSF finding status (New, In Progress, Suppressed, Resolved).
_FINDING_STATUS = {
    "new": (1, "New"),
    "open": (1, "New"),
    "in_progress": (2, "In Progress"),
    "wontfix": (3, "Suppressed"),
    "false_positive": (3, "Suppressed"),
    "ignored": (3, "Suppressed"),
    "resolved": (4, "Resolved"),
    "fixed": (4, "Resolved"),
    "closed": (4, "Resolved"),
}
_STATUS_UNKNOWN = (0, "Unknown")
_PRODUCT = {"name": "ChatGPT Enterprise Compliance Logs", "vendor_name": "OpenAI"}


def _title(name: str | None) -> str:
    """`login_success` / `MEMORY_READ` -> `Login Success` / `Memory Read` (Other's caption)."""
    return name.replace("_", " ").title() if name else "Other"


def _by_verb(view: RecordView, class_uid: int) -> Activity:
    verb = verb_of(view.action)
    found = _ACTIVITIES[class_uid].get(verb or "")
    if found is None:
        found = _ENTITY_DEFAULT.get(class_uid, (99, _title(view.action)))
    return (class_uid, *found)


def _audit_class(view: RecordView) -> int:
    words = set((view.action or "").upper().split("_"))
    if "ROLE" in words and _role(view):
        return 3005
    if verb_of(view.action) == "read":
        return 6003
    return 3001 if words & _IDENTITY_WORDS else 3004


def _auth_activity(view: RecordView) -> Activity:
    lowered = (view.action or "").lower()
    if lowered.startswith("login"):
        return 3002, 1, "Logon"
    if lowered.startswith("logout"):
        return 3002, 2, "Logoff"
    return 3002, 99, _title(view.action)


def _security_activity(view: RecordView) -> Activity:
    if text(view.details, "finding_id"):
        return 2004, 2, "Update"  # a finding's status, criticality or patch changed
    return _by_verb(view, 3004)


def _agents_activity(view: RecordView) -> Activity:
    action = (view.action or "").upper()
    lifecycle = action.startswith((*_LIFECYCLE_PREFIXES, "TRIGGER_"))
    return _by_verb(view, 3004 if lifecycle else 6003)


_CLASSIFIERS: dict[str, Callable[[RecordView], Activity]] = {
    "AUTH_LOG": _auth_activity,
    "AUDIT_LOG": lambda view: _by_verb(view, _audit_class(view)),
    "APP_AUTH_LOG": lambda view: _by_verb(view, 3004),
    "APP_LOG": lambda view: (6001, 99, _title(view.action)),
    "CODEX_SECURITY_LOG": _security_activity,
    "CUSTOM_AGENTS_LOG": _agents_activity,
}


def classify(view: RecordView) -> Activity:
    """(class_uid, activity_id, activity_name) of a record; API Activity for other types."""
    rule = _CLASSIFIERS.get(view.record_type)
    return rule(view) if rule else _by_verb(view, 6003)


def _actor_user(view: RecordView) -> JsonDict | None:
    actor = view.actor
    user: JsonDict
    if actor.user_id or actor.user_email:
        user = {
            "uid": actor.user_id,
            "name": actor.user_email,
            "email_addr": valid_email(actor.user_email),
            "type_id": 1,
            "type": "User",
        }
    elif actor.api_key_id:
        user = {
            "uid": actor.api_key_id,
            "programmatic_credentials": [{"uid": actor.api_key_id, "type": "API Key"}],
            "type_id": 4,
            "type": "Service",
        }
    else:
        return None
    return {k: v for k, v in user.items() if v is not None}


def _actor(view: RecordView) -> JsonDict | None:
    actor = view.actor
    found = {
        "user": _actor_user(view),
        "app_name": actor.agent_name or actor.system_id,
        "app_uid": actor.agent_id,
    }
    found = {k: v for k, v in found.items() if v is not None}
    return found or None


def _src_endpoint(view: RecordView) -> JsonDict | None:
    net = view.network
    geo = net.geo
    endpoint: JsonDict = {"ip": net.ip_text} if net.ip_text else {}
    if geo.country or geo.city or geo.region:
        location: JsonDict = {"country": geo.country, "city": geo.city, "region": geo.region}
        location |= {"lat": geo.lat, "long": geo.lon} if geo.lat is not None else {}
        endpoint["location"] = {k: v for k, v in location.items() if v is not None}
    if geo.asn is not None:
        endpoint["autonomous_system"] = {"number": geo.asn}
    if endpoint and "ip" not in endpoint:
        endpoint["name"] = "Unknown"  # geo without an address still needs the endpoint's id
    if not endpoint and view.client_id:
        endpoint = {"name": view.client_id}  # the client surface (CODEX_CLI, CHATGPT_WEB, ...)
    return endpoint or None


def _named(**values: str | None) -> JsonDict:
    found = {k: v for k, v in values.items() if v is not None}
    return found if ("uid" in found or "name" in found) else dict(UNKNOWN)


def _role(view: RecordView) -> str | None:
    return text(view.details, "new_role") or text(view.details, "role")


def _target_user(view: RecordView) -> JsonDict:
    data = view.details
    emails = data.get("email_addresses")
    email = text(data, "email_address") or text(emails[0] if isinstance(emails, list) else None)
    user = _named(uid=text(data, "user_id"), name=email)
    if valid := valid_email(email):
        user["email_addr"] = valid
    return user


_ENTITY_IDS = (
    "agent_id",
    "trigger_id",
    "scan_configuration_id",
    "link_id",
    "app_id",
    "gpt_id",
    "project_id",
    "domain_id",
    "skill_id",
    "credential_id",
    "plugin_id",
    "environment_id",
    "id",
)
_ENTITY_NAMES = ("name", "app_name", "feature", "skill_name", "credential_name", "hostname")


def _entity(view: RecordView) -> JsonDict:
    data = view.details
    if view.record_type == "APP_AUTH_LOG":
        data = view.raw
    kind = (view.action or "").split("_")[0].lower() or None
    uid = next((found for key in _ENTITY_IDS if (found := text(data, key))), None)
    name = next((found for key in _ENTITY_NAMES if (found := text(data, key))), None)
    name = name or text(data, "agent_fields", "name")
    if view.record_type == "APP_AUTH_LOG":
        kind, name = "app_link", text(data, "app_id")
    entity = _named(uid=uid, name=name or kind)
    return entity | ({"type": kind} if kind else {})


def _fill_authentication(view: RecordView, doc: JsonDict) -> None:
    doc["user"] = _actor_user(view) or dict(UNKNOWN)
    doc["service"] = {"name": "ChatGPT"}


def _fill_account_change(view: RecordView, doc: JsonDict) -> None:
    doc["user"] = _target_user(view)


def _fill_user_access(view: RecordView, doc: JsonDict) -> None:
    doc["privileges"] = [_role(view)]
    doc["user"] = _target_user(view)


def _fill_entity(view: RecordView, doc: JsonDict) -> None:
    doc["entity"] = _entity(view)


def _fill_web_resources(view: RecordView, doc: JsonDict) -> None:
    raw = view.raw
    resource = _named(uid=text(raw, "app_id"), name=text(raw, "app_name"))
    if kind := text(raw, "app_type"):
        resource["type"] = kind
    doc["web_resources"] = [resource]


def _fill_api(view: RecordView, doc: JsonDict) -> None:
    api: JsonDict = {"operation": view.action or view.record_type or "Unknown"}
    if view.network.destination:
        api["service"] = {"name": view.network.destination}
    doc["api"] = api
    doc.setdefault("actor", {"user": dict(UNKNOWN)})
    doc.setdefault("src_endpoint", dict(UNKNOWN))


def _fill_finding(view: RecordView, doc: JsonDict) -> None:
    details = view.details
    info: JsonDict = {"uid": text(details, "finding_id"), "product": dict(_PRODUCT)}
    if pr_url := text(details, "pr_url"):
        info["src_url"] = pr_url
    doc["finding_info"] = info
    criticality = (text(details, "updated_fields", "criticality") or "").lower()
    severity_id = _CRITICALITY.get(criticality, 0)
    doc |= {"severity_id": severity_id, "severity": SEVERITIES[severity_id]}
    status = (text(details, "updated_fields", "status") or "").lower()
    if status:
        status_id, caption = _FINDING_STATUS.get(status, (99, status))
        doc |= {"status_id": status_id, "status": caption}
    else:
        doc.pop("status_id", None)
        doc.pop("status", None)


_FILLERS: dict[int, Callable[[RecordView, JsonDict], None]] = {
    2004: _fill_finding,
    3001: _fill_account_change,
    3002: _fill_authentication,
    3004: _fill_entity,
    3005: _fill_user_access,
    6001: _fill_web_resources,
    6003: _fill_api,
}


def _status(view: RecordView) -> tuple[int, str]:
    outcome = view.outcome
    return STATUS[outcome] if outcome in ("success", "failure") else _STATUS_UNKNOWN


def _cloud(view: RecordView) -> JsonDict:
    cloud: JsonDict = {"provider": "OpenAI"}
    account = view.workspace_id or view.principal_id
    if account:
        cloud["account"] = {"uid": account}
    if view.event.organization:
        cloud["org"] = {"name": view.event.organization}
    return cloud


def _unmapped(view: RecordView) -> JsonDict:
    found = {
        "actor": view.raw.get("actor"),
        "principal": view.raw.get("principal"),
        "request_metadata": view.raw.get("request_metadata"),
        "client_id": view.client_id,
        "time_source": view.time_source if view.time_source != "timestamp" else None,
        "type": view.record_type if not view.info.known else None,
        **view.content(),
    }
    return {k: v for k, v in found.items() if v is not None}


# Classes whose actor comes with the host profile, and the one class with ai_operation.
_HOST_PROFILE_ACTOR = frozenset({2004, 6001})
_AI_CLASSES = frozenset({6003})
_NO_ENDPOINTS = frozenset({2004})  # findings say where the finding is, not who connected


def _metadata(view: RecordView, profiles: list[str]) -> JsonDict:
    return {
        "product": dict(_PRODUCT),
        "version": OCSF_VERSION,
        "uid": view.event.id,
        "log_name": view.record_type,
        "event_code": view.action or view.record_type,
        "profiles": profiles,
    }


def compliance_ocsf(view: RecordView) -> JsonDict:
    class_uid, activity_id, activity_name = classify(view)
    status_id, status = _status(view)
    severity_id = 2 if view.outcome == "failure" else 1
    doc: JsonDict = {
        "class_uid": class_uid,
        "activity_id": activity_id,
        "activity_name": activity_name,
    }
    finish_class(doc)
    code, message = view.error
    endpoints = class_uid not in _NO_ENDPOINTS
    optional = {
        "status_code": code,
        "status_detail": message,
        "actor": _actor(view),
        "src_endpoint": _src_endpoint(view) if endpoints else None,
        "http_request": _user_agent(view) if endpoints else None,
        "ai_model": {"name": view.model, "ai_provider": "OpenAI"}
        if view.model and class_uid in _AI_CLASSES
        else None,
    }
    optional = {k: v for k, v in optional.items() if v is not None}
    profiles = ["cloud"]
    if "ai_model" in optional:
        profiles.append("ai_operation")
    if "actor" in optional and class_uid in _HOST_PROFILE_ACTOR:
        profiles.append("host")
    doc |= {
        "severity_id": severity_id,
        "severity": SEVERITIES[severity_id],
        "status_id": status_id,
        "status": status,
        "time": view.time_ms,
        "metadata": _metadata(view, profiles),
        "cloud": _cloud(view),
        **optional,
    }
    _FILLERS[class_uid](view, doc)
    if unmapped := _unmapped(view):
        doc["unmapped"] = unmapped
    return doc


def _user_agent(view: RecordView) -> JsonDict | None:
    agent = view.network.user_agent
    return {"user_agent": agent} if agent else None


def render_ocsf(event: AuditEvent) -> JsonDict:
    """One OCSF 1.8.0 event for one compliance record."""
    return compliance_ocsf(view_of(event))
