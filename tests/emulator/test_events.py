"""The event generator: every documented type, spec-shaped payloads, mixed actors, hostile text."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import orjson
import pytest

import shipper.emulator
from shipper.emulator import (
    EVENT_TYPES,
    TENANT_SCOPED_TYPES,
    generate_events,
    is_tenant_scoped,
)
from shipper.emulator.events import HOSTILE_STRINGS, UNKNOWN_TYPES

START, END = 1_722_000_000, 1_722_000_600

# Payload properties per type, copied from AuditLog in openai-audit-logs/spec-fragment.yaml.
SPEC_PAYLOAD_KEYS: dict[str, set[str]] = {
    "api_key.created": {"data", "id"},
    "api_key.updated": {"changes_requested", "id"},
    "api_key.deleted": {"id"},
    "checkpoint.permission.created": {"data", "id"},
    "checkpoint.permission.deleted": {"id"},
    "external_key.registered": {"data", "id"},
    "external_key.removed": {"id"},
    "group.created": {"data", "id"},
    "group.updated": {"changes_requested", "id"},
    "group.deleted": {"id"},
    "scim.enabled": {"id"},
    "scim.disabled": {"id"},
    "invite.sent": {"data", "id"},
    "invite.accepted": {"id"},
    "invite.deleted": {"id"},
    "ip_allowlist.created": {"allowed_ips", "id", "name"},
    "ip_allowlist.updated": {"allowed_ips", "id"},
    "ip_allowlist.deleted": {"allowed_ips", "id", "name"},
    "ip_allowlist.config.activated": {"configs"},
    "ip_allowlist.config.deactivated": {"configs"},
    "login.succeeded": set(),
    "login.failed": {"error_code", "error_message"},
    "logout.succeeded": set(),
    "logout.failed": {"error_code", "error_message"},
    "organization.updated": {"changes_requested", "id"},
    "project.created": {"data", "id"},
    "project.updated": {"changes_requested", "id"},
    "project.archived": {"id"},
    "project.deleted": {"id"},
    "rate_limit.updated": {"changes_requested", "id"},
    "rate_limit.deleted": {"id"},
    "role.created": {"id", "permissions", "resource_id", "resource_type", "role_name"},
    "role.updated": {"changes_requested", "id"},
    "role.deleted": {"id"},
    "role.assignment.created": {
        "id",
        "principal_id",
        "principal_type",
        "resource_id",
        "resource_type",
    },
    "role.assignment.deleted": {
        "id",
        "principal_id",
        "principal_type",
        "resource_id",
        "resource_type",
    },
    "role.bound_to_resource": {
        "connector_id",
        "connector_name",
        "enabled",
        "id",
        "permissions",
        "resource_id",
        "resource_type",
        "role_id",
        "source",
        "workspace_id",
    },
    "role.unbound_from_resource": {
        "connector_id",
        "connector_name",
        "enabled",
        "id",
        "permissions",
        "resource_id",
        "resource_type",
        "role_id",
        "source",
        "workspace_id",
    },
    "service_account.created": {"data", "id"},
    "service_account.updated": {"changes_requested", "id"},
    "service_account.deleted": {"id"},
    "workload_identity_provider.created": {"data", "id"},
    "workload_identity_provider.updated": {"changes_requested", "id"},
    "workload_identity_provider.deleted": {"id", "name"},
    "workload_identity_provider_mapping.created": {"data", "id", "identity_provider_id"},
    "workload_identity_provider_mapping.updated": {
        "changes_requested",
        "id",
        "identity_provider_id",
    },
    "workload_identity_provider_mapping.deleted": {
        "id",
        "identity_provider_id",
        "project_id",
        "service_account_id",
    },
    "user.added": {"data", "id"},
    "user.updated": {"changes_requested", "id"},
    "user.deleted": {"id"},
    "certificate.created": {"id", "name"},
    "certificate.updated": {"id", "name"},
    "certificate.deleted": {"certificate", "id", "name"},
    "certificates.activated": {"certificates"},
    "certificates.deactivated": {"certificates"},
}
# Declared properties of nested objects (data / changes_requested) and of array items.
SPEC_NESTED_KEYS: dict[tuple[str, str], set[str]] = {
    ("api_key.created", "data"): {"scopes"},
    ("api_key.updated", "changes_requested"): {"scopes"},
    ("checkpoint.permission.created", "data"): {"fine_tuned_model_checkpoint", "project_id"},
    ("group.created", "data"): {"group_name"},
    ("group.updated", "changes_requested"): {"group_name"},
    ("invite.sent", "data"): {"email", "role"},
    ("organization.updated", "changes_requested"): {
        "api_call_logging",
        "api_call_logging_project_ids",
        "description",
        "name",
        "threads_ui_visibility",
        "title",
        "usage_dashboard_visibility",
    },
    ("project.created", "data"): {"name", "title"},
    ("project.updated", "changes_requested"): {"title"},
    ("rate_limit.updated", "changes_requested"): {
        "batch_1_day_max_input_tokens",
        "max_audio_megabytes_per_1_minute",
        "max_images_per_1_minute",
        "max_requests_per_1_day",
        "max_requests_per_1_minute",
        "max_tokens_per_1_minute",
    },
    ("role.updated", "changes_requested"): {
        "description",
        "metadata",
        "permissions_added",
        "permissions_removed",
        "resource_id",
        "resource_type",
        "role_name",
    },
    ("service_account.created", "data"): {"role"},
    ("service_account.updated", "changes_requested"): {"role"},
    ("user.added", "data"): {"role"},
    ("user.updated", "changes_requested"): {"role"},
    ("ip_allowlist.config.activated", "configs"): {"id", "name"},
    ("ip_allowlist.config.deactivated", "configs"): {"id", "name"},
    ("certificates.activated", "certificates"): {"id", "name"},
    ("certificates.deactivated", "certificates"): {"id", "name"},
}


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return generate_events(3000, start=START, end=END, seed=7)


def test_public_api_is_pinned() -> None:
    """The package re-exports exactly the documented names."""
    assert sorted(shipper.emulator.__all__) == sorted(
        [
            "EVENT_TYPES",
            "TENANT_SCOPED_TYPES",
            "Emulator",
            "Fault",
            "generate_events",
            "is_tenant_scoped",
        ]
    )


def test_event_types_come_from_the_pinned_data_file() -> None:
    """EVENT_TYPES is the 145-type list of shipper/data/event_types.json, which names its source."""
    data = json.loads(
        resources.files("shipper").joinpath("data/event_types.json").read_text("utf-8")
    )
    assert "copied_from" in data
    assert tuple(data["event_types"]) == EVENT_TYPES
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES)) == 145


def test_tenant_scoped_types_are_tenant_namespace_plus_role_bindings() -> None:
    """Tenant scope is `tenant.*` plus role.bound_to_resource and role.unbound_from_resource."""
    expected = {t for t in EVENT_TYPES if t.startswith("tenant.")}
    expected |= {"role.bound_to_resource", "role.unbound_from_resource"}
    assert expected == TENANT_SCOPED_TYPES
    assert is_tenant_scoped("tenant.something_new.happened")
    assert not is_tenant_scoped("role.created")
    assert not is_tenant_scoped("project.created")


def test_every_type_appears_with_its_payload_under_the_type_key() -> None:
    """145 events cover all documented types, each with a payload object under its type."""
    generated = generate_events(145, start=START, end=END, seed=1, unknown_ratio=1.0)
    assert {e["type"] for e in generated} == set(EVENT_TYPES)
    for event in generated:
        assert isinstance(event[event["type"]], dict)
        assert event["object"] == "organization.audit_log"


def test_payloads_have_the_spec_shape(events: list[dict[str, Any]]) -> None:
    """Types with a payload schema carry exactly its properties; nested keys stay within it."""
    for event in events:
        payload = event[event["type"]]
        if event["type"] not in SPEC_PAYLOAD_KEYS:
            continue
        assert set(payload) == SPEC_PAYLOAD_KEYS[event["type"]], event["type"]
        for key, value in payload.items():
            declared = SPEC_NESTED_KEYS.get((event["type"], key))
            items = value if isinstance(value, list) else [value]
            if declared is not None:
                assert all(set(item) <= declared for item in items), (event["type"], key)


def test_types_without_schema_get_an_id_and_data_or_changes(events: list[dict[str, Any]]) -> None:
    """Types the spec gives no payload schema carry {"id", "data" | "changes_requested"}."""
    for event in events:
        if event["type"] in SPEC_PAYLOAD_KEYS:
            continue
        payload = event[event["type"]]
        assert isinstance(payload["id"], str)
        assert set(payload) in ({"id", "data"}, {"id", "changes_requested"})


def test_login_and_logout_failures_carry_error_fields(events: list[dict[str, Any]]) -> None:
    """login.failed and logout.failed carry string error_code and error_message."""
    failures = [e for e in events if e["type"] in ("login.failed", "logout.failed")]
    assert failures
    for event in failures:
        payload = event[event["type"]]
        assert isinstance(payload["error_code"], str)
        assert isinstance(payload["error_message"], str)


def test_same_seed_same_events_other_seed_other_events() -> None:
    """A seed names a data set exactly; another seed gives other ids."""
    a = generate_events(300, start=START, end=END, seed=42)
    b = generate_events(300, start=START, end=END, seed=42)
    c = generate_events(300, start=START, end=END, seed=43)
    assert orjson.dumps(a) == orjson.dumps(b)
    assert {e["id"] for e in a}.isdisjoint({e["id"] for e in c})


def test_ids_are_unique_prefixed_hex(events: list[dict[str, Any]]) -> None:
    """Ids are unique and are the prefix plus 24 hex digits."""
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)
    for event_id in ids:
        assert event_id.startswith("audit_log-")
        int(event_id.removeprefix("audit_log-"), 16)
        assert len(event_id) == len("audit_log-") + 24
    custom = generate_events(5, start=START, end=END, id_prefix="x-")
    assert all(e["id"].startswith("x-") for e in custom)


def test_effective_at_is_an_integer_in_range_and_seconds_are_shared(
    events: list[dict[str, Any]],
) -> None:
    """effective_at is an int in [start, end) and many events share a second."""
    times = [e["effective_at"] for e in events]
    assert all(type(t) is int and START <= t < END for t in times)
    assert len(set(times)) < len(times) / 2


def test_actor_kinds_are_mixed() -> None:
    """Sessions (IPv4 and IPv6), user and service-account keys, null, absent and unknown actors."""
    generated = generate_events(2000, start=START, end=END, seed=3, unknown_ratio=0.05)
    actors = [e.get("actor", "absent") for e in generated]
    sessions = [a["session"] for a in actors if isinstance(a, dict) and a["type"] == "session"]
    key_types = {
        a["api_key"]["type"] for a in actors if isinstance(a, dict) and a["type"] == "api_key"
    }
    assert key_types == {"user", "service_account"}
    assert any(":" in s["ip_address"] for s in sessions)
    assert any("." in s["ip_address"] for s in sessions)
    assert any({"user_agent", "ja3", "ja4", "ip_address_details"} <= set(s) for s in sessions)
    details = [s["ip_address_details"] for s in sessions if "ip_address_details" in s]
    assert all(isinstance(v, str) for d in details for v in d.values())
    assert None in actors
    assert "absent" in actors
    assert any(isinstance(a, dict) and a["type"] not in ("session", "api_key") for a in actors)


def test_unknown_types_appear_only_beyond_full_coverage() -> None:
    """Unknown types appear at unknown_ratio without costing any documented type its turn."""
    generated = generate_events(400, start=START, end=END, seed=5, unknown_ratio=0.5)
    types = {e["type"] for e in generated}
    assert set(EVENT_TYPES) <= types
    assert types & set(UNKNOWN_TYPES)
    assert not {
        e["type"] for e in generate_events(400, start=START, end=END, unknown_ratio=0.0)
    } - set(EVENT_TYPES)


def test_project_is_present_absent_or_null(events: list[dict[str, Any]]) -> None:
    """About half the events carry a project {id, name}; the rest have none or null."""
    with_project = [e for e in events if isinstance(e.get("project"), dict)]
    assert 0.35 < len(with_project) / len(events) < 0.65
    assert all(set(e["project"]) == {"id", "name"} for e in with_project)
    assert any("project" not in e for e in events)
    assert any("project" in e and e["project"] is None for e in events)


def test_undeclared_top_level_fields_occur(events: list[dict[str, Any]]) -> None:
    """Some events carry top-level fields the spec does not declare."""
    declared = {"id", "object", "type", "effective_at", "actor", "project"}
    assert any(set(e) - declared - {e["type"]} for e in events)


def test_hostile_strings_appear_and_round_trip_through_json() -> None:
    """Hostile text (newlines, NUL, forged syslog/CEF/bulk lines, 10k chars, non-BMP) survives JSON."""
    generated = generate_events(600, start=START, end=END, seed=9, hostile_ratio=1.0)
    blob = orjson.dumps(generated)
    assert orjson.loads(blob) == generated
    assert json.loads(blob.decode("utf-8")) == generated
    text = blob.decode("utf-8")
    for needle in (
        "\\n",
        "\\r\\n",
        "\\u0000",
        "<134>1",
        '{\\"index\\":{}}',
        "CEF:0|",
        "\U0001d518",
        "x" * 10_000,
    ):
        assert needle in text, needle
    assert all(
        h in text for h in (json.dumps(s, ensure_ascii=False)[1:-1] for s in HOSTILE_STRINGS)
    )


def test_hostile_text_reaches_emails_agents_names_and_error_messages() -> None:
    """Hostile strings land in actor emails and user agents, project names and error messages."""
    generated = generate_events(1500, start=START, end=END, seed=11, hostile_ratio=1.0)
    hostile = set(HOSTILE_STRINGS)
    sessions = [
        e["actor"]["session"] for e in generated if (e.get("actor") or {}).get("type") == "session"
    ]
    assert any(s["user_agent"] in hostile for s in sessions)
    assert any(s["user"]["email"].removesuffix("@example.com") in hostile for s in sessions)
    assert any((e.get("project") or {}).get("name") in hostile for e in generated)
    failures = [e[e["type"]] for e in generated if e["type"] in ("login.failed", "logout.failed")]
    assert any(p["error_message"] in hostile for p in failures)


def test_zero_hostile_ratio_gives_clean_text() -> None:
    """With hostile_ratio=0 no hostile string appears anywhere."""
    generated = generate_events(500, start=START, end=END, hostile_ratio=0.0)
    text = orjson.dumps(generated).decode()
    assert not any(json.dumps(s, ensure_ascii=False)[1:-1] in text for s in HOSTILE_STRINGS)


@pytest.mark.parametrize(
    ("count", "start", "end", "kwargs"),
    [
        (-1, START, END, {}),
        (1, END, START, {}),
        (1, START, END, {"hostile_ratio": 1.5}),
        (1, START, END, {"unknown_ratio": -0.1}),
    ],
)
def test_bad_arguments_are_rejected(
    count: int, start: int, end: int, kwargs: dict[str, float]
) -> None:
    """Negative counts, empty spans and ratios outside [0, 1] raise ValueError."""
    with pytest.raises(ValueError):
        generate_events(count, start=start, end=end, **kwargs)  # type: ignore[arg-type]


def test_zero_events_is_fine_with_any_span() -> None:
    """count=0 returns an empty list."""
    assert generate_events(0, start=END, end=START) == []
