"""Deterministic, realistic audit-log events: every documented type, mixed actors, hostile text.

Everything is drawn from one `random.Random(seed)`, so a seed names a data set exactly. The payload
shapes follow the spec fragment (`openai-audit-logs/spec-fragment.yaml`); types the spec gives no
payload schema get a plausible `{"id", "data" | "changes_requested"}` under the type key.
"""

from __future__ import annotations

import contextlib
import gc
import random
from collections.abc import Callable, Iterator
from typing import Any

from shipper.source.audit_log.event_types import CATALOG, is_tenant_scoped

Event = dict[str, Any]


EVENT_TYPES: tuple[str, ...] = CATALOG
TENANT_SCOPED_TYPES: frozenset[str] = frozenset(t for t in EVENT_TYPES if is_tenant_scoped(t))

# Types and actor kinds the API may start sending without notice; consumers must pass them through.
UNKNOWN_TYPES = ("future_feature.enabled", "assistant.vector_store.shared", "tenant.future.enabled")

HOSTILE_STRINGS: tuple[str, ...] = (
    "line\nbreak",
    "crlf\r\nX-Injected: header",
    "nul\x00byte",
    "bell\x07 esc\x1b[31mred\x1b[0m del\x7f vt\x0b ff\x0c",
    'double "quoted" value',
    "back\\slash\\",
    "close]bracket [open",
    "pipe|separated|value",
    "key=value other=1",
    "x\n<134>1 2024-01-01T00:00:00Z forged.example shipper - - - forged syslog",
    'x\n{"index":{}}\n{"forged":true}',
    "CEF:0|Forged|Vendor|1.0|100|forged event|10|src=203.0.113.66 act=allow",
    "unicode line\u2028separator\u2029next line\u0085 bom\ufeff",
    "emoji \U0001f984 and math \U0001d518",
    "long-" + "x" * 10_000,
)

_SCOPES = ("api.model.request", "api.model.read", "api.files.write", "api.audit_logs.read")
_ROLES = ("owner", "member")
_FIRST = ("ada", "grace", "alan", "edsger", "barbara", "ken", "radia", "linus", "margaret")  # fmt: skip
_LAST = ("lovelace", "hopper", "turing", "dijkstra", "liskov", "thompson", "perlman", "hamilton")
_PLACES = (
    ("US", "San Francisco", "California", "CA", "13335", "37.77490", "-122.41940"),
    ("DE", "Berlin", "Berlin", "BE", "3320", "52.52000", "13.40500"),
    ("JP", "Tokyo", "Tokyo", "13", "2516", "35.68950", "139.69170"),
    ("BR", "Sao Paulo", "Sao Paulo", "SP", "28573", "-23.55050", "-46.63330"),
)
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "curl/8.5.0",
)
_EXTRA_FIELDS = ("organization_id", "request_id", "client_metadata")


class _Gen:
    """Random source plus the small pools of users, keys and projects events share."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
        names = [f"{f}.{n}" for f in _FIRST for n in _LAST]
        self.users = [(self.id("user-", 24), f"{n}@example.com") for n in names[:40]]
        self.service_accounts = [self.id("svc_acct_", 20) for _ in range(8)]
        self.keys = [self.id("key_", 16) for _ in range(30)]
        self.projects = [(self.id("proj_", 24), f"Project {n.title()}") for n in _LAST]

    def id(self, prefix: str, digits: int = 20) -> str:
        return f"{prefix}{self.rng.getrandbits(4 * digits):0{digits}x}"

    def below(self, n: int) -> int:
        # Scaling random() is several times faster than randrange() and uniform enough here.
        return int(self.rng.random() * n)

    def pick(self, items: tuple[str, ...]) -> str:
        return items[self.below(len(items))]


Builder = Callable[[_Gen, str], dict[str, Any]]


def _with_id(prefix: str, **fields: Callable[[_Gen, str], Any]) -> Builder:
    """A payload of a fresh `prefix` id plus fields computed from (gen, label)."""
    return lambda g, label: {"id": g.id(prefix)} | {k: f(g, label) for k, f in fields.items()}


def _scopes(g: _Gen, _: str) -> dict[str, Any]:
    return {"scopes": g.rng.sample(_SCOPES, g.rng.randint(1, 3))}


def _role(g: _Gen, _: str) -> dict[str, Any]:
    return {"role": g.pick(_ROLES)}


def _ips(g: _Gen, _: str) -> list[str]:
    return [f"198.51.100.{g.below(256)}/32", "203.0.113.0/24"]


def _named_list(prefix: str) -> Builder:
    return lambda g, label: {"id": g.id(prefix), "name": label}


def _role_binding(g: _Gen, label: str) -> dict[str, Any]:
    workspace, connector = g.id("ws_", 12), g.id("conn_", 12)
    return {
        "id": f"{workspace}__{connector}",
        "role_id": g.id("role_"),
        "resource_id": f"{workspace}__{connector}",
        "resource_type": "workspace_connector",
        "permissions": ["connector.use"],
        "workspace_id": workspace,
        "connector_id": connector,
        "connector_name": label,
        "enabled": g.rng.random() < 0.5,
        "source": g.pick(("role_toggle", "role_connector_update", "workspace_permissions")),
    }


def _role_assignment(g: _Gen, _: str) -> dict[str, Any]:
    return {
        "id": g.id("ra_"),
        "principal_id": g.users[g.below(len(g.users))][0],
        "principal_type": "user",
        "resource_id": g.projects[g.below(len(g.projects))][0],
        "resource_type": "project",
    }


def _failure(g: _Gen, label: str) -> dict[str, Any]:
    return {
        "error_code": g.pick(("invalid_credentials", "mfa_failed", "session_expired")),
        "error_message": label,
    }


def _const(value: Any) -> Callable[[_Gen, str], Any]:
    return lambda _g, _label: value


def _label(_: _Gen, label: str) -> str:
    return label


_PAYLOADS: dict[str, Builder] = {
    "api_key.created": _with_id("key_", data=_scopes),
    "api_key.updated": _with_id("key_", changes_requested=_scopes),
    "api_key.deleted": _with_id("key_"),
    "certificate.created": _with_id("cert_", name=_label),
    "certificate.updated": _with_id("cert_", name=_label),
    "certificate.deleted": _with_id(
        "cert_",
        name=_label,
        certificate=_const("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"),
    ),
    "certificates.activated": lambda g, label: {"certificates": [_named_list("cert_")(g, label)]},
    "certificates.deactivated": lambda g, label: {"certificates": [_named_list("cert_")(g, label)]},
    "checkpoint.permission.created": lambda g, _: {
        "id": g.id("cp_"),
        "data": {"project_id": g.projects[0][0], "fine_tuned_model_checkpoint": g.id("ftckpt_")},
    },
    "checkpoint.permission.deleted": _with_id("cp_"),
    "external_key.registered": _with_id("ekm_", data=lambda g, label: {"name": label}),
    "external_key.removed": _with_id("ekm_"),
    "group.created": _with_id("group_", data=lambda g, label: {"group_name": label}),
    "group.updated": _with_id("group_", changes_requested=lambda g, label: {"group_name": label}),
    "group.deleted": _with_id("group_"),
    "invite.sent": _with_id(
        "invite-", data=lambda g, _: {"email": "new.hire@example.com"} | _role(g, _)
    ),
    "invite.accepted": _with_id("invite-"),
    "invite.deleted": _with_id("invite-"),
    "ip_allowlist.created": _with_id("ipal_", name=_label, allowed_ips=_ips),
    "ip_allowlist.updated": _with_id("ipal_", allowed_ips=_ips),
    "ip_allowlist.deleted": _with_id("ipal_", name=_label, allowed_ips=_ips),
    "ip_allowlist.config.activated": lambda g, label: {"configs": [_named_list("ipal_")(g, label)]},
    "ip_allowlist.config.deactivated": lambda g, label: {
        "configs": [_named_list("ipal_")(g, label)]
    },
    "login.succeeded": lambda _g, _label: {},
    "login.failed": _failure,
    "logout.succeeded": lambda _g, _label: {},
    "logout.failed": _failure,
    "organization.updated": _with_id(
        "org-",
        changes_requested=lambda g, label: {"title": label, "threads_ui_visibility": "OWNERS"},
    ),
    "project.created": _with_id("proj_", data=lambda g, label: {"name": label, "title": label}),
    "project.updated": _with_id("proj_", changes_requested=lambda g, label: {"title": label}),
    "project.archived": _with_id("proj_"),
    "project.deleted": _with_id("proj_"),
    "rate_limit.updated": _with_id(
        "rl-",
        changes_requested=lambda g, _: {"max_requests_per_1_minute": g.rng.randint(1, 10_000)},
    ),
    "rate_limit.deleted": _with_id("rl-"),
    "role.created": _with_id(
        "role_",
        role_name=_label,
        permissions=_const(["api.model.request"]),
        resource_type=_const("project"),
        resource_id=lambda g, _: g.projects[0][0],
    ),
    "role.updated": _with_id(
        "role_",
        changes_requested=lambda g, label: {
            "role_name": label,
            "permissions_added": ["api.files.write"],
            "permissions_removed": [],
            "metadata": {"ticket": "SEC-42"},
        },
    ),
    "role.deleted": _with_id("role_"),
    "role.assignment.created": _role_assignment,
    "role.assignment.deleted": _role_assignment,
    "role.bound_to_resource": _role_binding,
    "role.unbound_from_resource": _role_binding,
    "scim.enabled": _with_id("org-"),
    "scim.disabled": _with_id("org-"),
    "service_account.created": _with_id("svc_acct_", data=_role),
    "service_account.updated": _with_id("svc_acct_", changes_requested=_role),
    "service_account.deleted": _with_id("svc_acct_"),
    "user.added": _with_id("user-", data=_role),
    "user.updated": _with_id("proj_", changes_requested=_role),  # the spec says: the project ID
    "user.deleted": _with_id("user-"),
    "workload_identity_provider.created": _with_id("wip_", data=lambda g, label: {"name": label}),
    "workload_identity_provider.updated": _with_id(
        "wip_", changes_requested=lambda g, label: {"name": label}
    ),
    "workload_identity_provider.deleted": _with_id("wip_", name=_label),
    "workload_identity_provider_mapping.created": _with_id(
        "wipm_", identity_provider_id=lambda g, _: g.id("wip_"), data=_const({"claim": "sub"})
    ),
    "workload_identity_provider_mapping.updated": _with_id(
        "wipm_", identity_provider_id=lambda g, _: g.id("wip_"), changes_requested=_const({})
    ),
    "workload_identity_provider_mapping.deleted": _with_id(
        "wipm_",
        identity_provider_id=lambda g, _: g.id("wip_"),
        project_id=lambda g, _: g.projects[0][0],
        service_account_id=lambda g, _: g.service_accounts[0],
    ),
}


def _generic_payload(g: _Gen, event_type: str, label: str) -> dict[str, Any]:
    """A payload for a type the spec gives no schema: its resource id plus data or changes."""
    parts = event_type.split(".")
    noun, verb = parts[-2], parts[-1]
    body_key = "changes_requested" if verb in ("updated", "upserted") else "data"
    return {"id": g.id(f"{noun}_"), body_key: {"name": label, "status": verb}}


def _email(email: str, hostile: str | None) -> str:
    return email if hostile is None else f"{hostile}@example.com"


def _session(g: _Gen, hostile: str | None) -> dict[str, Any]:
    user_id, email = g.users[g.below(len(g.users))]
    session: dict[str, Any] = {"user": {"id": user_id, "email": email}}
    if g.rng.random() < 0.7:
        session["ip_address"] = f"203.0.113.{1 + g.below(254)}"
    else:
        session["ip_address"] = f"2001:db8:{g.rng.getrandbits(16):x}::{g.rng.getrandbits(16):x}"
    session["user_agent"] = g.pick(_AGENTS)
    if g.rng.random() < 0.8:  # the spec example shows these; the schema does not declare them
        session["ja3"] = g.id("", 32)
        session["ja4"] = f"t13d1516h2_{g.id('', 12)}_{g.id('', 12)}"
        keys = ("country", "city", "region", "region_code", "asn", "latitude", "longitude")
        session["ip_address_details"] = dict(zip(keys, _PLACES[g.below(len(_PLACES))], strict=True))
    if hostile is not None:
        session["user"]["email"] = _email(email, hostile)
        session["user_agent"] = hostile
    return {"type": "session", "session": session}


def _api_key(g: _Gen, hostile: str | None) -> dict[str, Any]:
    key: dict[str, Any] = {"id": g.keys[g.below(len(g.keys))]}
    if g.rng.random() < 0.55:
        user_id, email = g.users[g.below(len(g.users))]
        key |= {"type": "user", "user": {"id": user_id, "email": _email(email, hostile)}}
    else:
        sa = g.service_accounts[g.below(len(g.service_accounts))]
        key |= {"type": "service_account", "service_account": {"id": sa}}
    return {"type": "api_key", "api_key": key}


_ABSENT = object()


def _actor(g: _Gen, hostile: str | None, unknown_ratio: float) -> Any:
    """An actor, `None` (explicit null) or `_ABSENT` (no key at all)."""
    roll = g.rng.random()
    if roll < unknown_ratio:
        return {
            "type": "workload_identity",
            "workload_identity": {
                "id": g.id("wi_"),
                "subject": "repo:acme/deploy:ref:refs/heads/main",
            },
        }
    roll = g.rng.random()
    if roll < 0.5:
        return _session(g, hostile)
    if roll < 0.9:
        return _api_key(g, hostile)
    return None if roll < 0.95 else _ABSENT


def _event(
    g: _Gen, event_id: str, event_type: str, when: int, *, hostile: str | None, unknown: float
) -> Event:
    label = hostile if hostile is not None else f"{g.pick(_FIRST).title()} {g.pick(_LAST).title()}"
    event: Event = {
        "id": event_id,
        "object": "organization.audit_log",
        "type": event_type,
        "effective_at": when,
    }
    actor = _actor(g, hostile, unknown)
    if actor is not _ABSENT:
        event["actor"] = actor
    roll = g.rng.random()
    if roll < 0.5:
        project_id, name = g.projects[g.below(len(g.projects))]
        event["project"] = {"id": project_id, "name": hostile or name}
    elif roll < 0.75:
        event["project"] = None
    build = _PAYLOADS.get(event_type)
    event[event_type] = build(g, label) if build else _generic_payload(g, event_type, label)
    if g.rng.random() < 0.02:  # fields the spec does not declare turn up too
        event[g.pick(_EXTRA_FIELDS)] = {"note": label, "v": 2}
    return event


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building millions of long-lived, acyclic objects.

    Each collection would walk every event built so far, which made loading a million events
    three to four times slower; none of them holds a cycle, so nothing is lost by waiting.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def generate_events(
    count: int,
    *,
    start: int,
    end: int,
    seed: int = 0,
    hostile_ratio: float = 0.05,
    unknown_ratio: float = 0.01,
    id_prefix: str = "audit_log-",
) -> list[Event]:
    """`count` events with `effective_at` in [start, end), every documented type once per cycle."""
    if count < 0 or (count and end <= start):
        raise ValueError(f"need count >= 0 and start < end, got {count=}, {start=}, {end=}")
    if not (0.0 <= hostile_ratio <= 1.0 and 0.0 <= unknown_ratio <= 1.0):
        raise ValueError("hostile_ratio and unknown_ratio must be within [0, 1]")
    g, span = _Gen(seed), end - start
    seen: set[str] = set()
    with gc_paused():
        return [
            _event(
                g,
                _unique_id(g, id_prefix, seen),
                event_type,
                start + g.below(span),
                hostile=g.pick(HOSTILE_STRINGS) if g.rng.random() < hostile_ratio else None,
                unknown=unknown_ratio,
            )
            for event_type in _types(g, count, unknown_ratio)
        ]


def _types(g: _Gen, count: int, unknown_ratio: float) -> list[str]:
    """Documented types cycling from a random offset; unknown ones only beyond the first cycle
    (or when `count` is short of one), so `count >= 145` covers every documented type."""
    n = len(EVENT_TYPES)
    offset, known, types = g.below(n), 0, []
    for i in range(count):
        if (i >= n or count < n) and g.rng.random() < unknown_ratio:
            types.append(g.pick(UNKNOWN_TYPES))
        else:
            types.append(EVENT_TYPES[(offset + known) % n])
            known += 1
    return types


def _unique_id(g: _Gen, prefix: str, seen: set[str]) -> str:
    event_id = f"{prefix}{g.rng.getrandbits(96):024x}"
    while event_id in seen:  # 96 random bits: practically never loops
        event_id = f"{prefix}{g.rng.getrandbits(96):024x}"
    seen.add(event_id)
    return event_id
