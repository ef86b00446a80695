"""OCSF rendering: golden events per family, schema validity, and class-specific attributes."""

from __future__ import annotations

import orjson
import pytest

from shipper.model.event import AuditEvent
from shipper.render import renderer
from shipper.render.ocsf import render_ocsf
from tests.render import ocsf_validator, samples
from tests.render.golden import as_text, check


@pytest.mark.parametrize("family", sorted(samples.FAMILIES))
def test_golden(family: str) -> None:
    """Each mapping family renders exactly as its reviewed golden event."""
    check(f"{family}.ocsf.json", as_text(render_ocsf(samples.event(family))))


@pytest.mark.parametrize("family", sorted(samples.FAMILIES))
def test_valid_ocsf(family: str) -> None:
    """Every family's event passes the OCSF 1.8.0 validator compiled from the schema source."""
    assert ocsf_validator.validate(render_ocsf(samples.event(family))) == []


def test_validator_can_fail() -> None:
    """The validator rejects unknown attributes, bad enums, profile misuse and bad types."""
    doc = render_ocsf(samples.event("auth_failure"))
    doc["metadata"]["profiles"] = []
    doc["status_id"] = 7
    doc["src_endpoint"]["ip"] = "not-an-ip"
    doc["colour"] = "red"
    errors = "\n".join(ocsf_validator.validate(doc))
    for needle in (
        "cloud: belongs to profile",
        "status_id: 7 not in enum",
        "not a valid ip_t",
        "colour: unknown attribute",
    ):
        assert needle in errors


def test_logon_failure() -> None:
    """login.failed: Authentication/Logon, status Failure with the API's error, time in ms."""
    doc = render_ocsf(samples.event("auth_failure"))
    assert (doc["class_uid"], doc["activity_id"], doc["type_uid"]) == (3002, 1, 300201)
    assert (doc["status_id"], doc["status"]) == (2, "Failure")
    assert (doc["status_code"], doc["status_detail"]) == (
        "invalid_password",
        "Wrong email or password.",
    )
    assert doc["time"] == (samples.T + 2) * 1000
    assert doc["user"]["email_addr"] == "alice@example.com"
    assert doc["service"] == {"name": "OpenAI"}
    assert doc["src_endpoint"]["ip"] == "2001:db8::7"
    assert doc["http_request"] == {"user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}


def test_metadata_and_cloud_profile() -> None:
    """metadata names product, version 1.8.0, the event id and the cloud profile it uses."""
    doc = render_ocsf(samples.event("api_key"))
    assert doc["metadata"] == {
        "product": {"name": "Audit Logs", "vendor_name": "OpenAI"},
        "version": "1.8.0",
        "uid": "audit_log-0003",
        "event_code": "api_key.created",
        "profiles": ["cloud"],
    }
    assert doc["cloud"] == {
        "provider": "OpenAI",
        "account": {"uid": "proj_abc", "name": "Fraud detection"},
        "org": {"name": "acme-prod"},
    }
    assert doc["api"] == {"operation": "api_key.created"}
    assert doc["actor"]["user"]["programmatic_credentials"] == [
        {"uid": "key_user_1", "type": "API Key"}
    ]


def test_entity_management_names_the_entity() -> None:
    """Configuration changes are Entity Management with the target as the entity."""
    doc = render_ocsf(samples.event("api_key"))
    assert (doc["class_uid"], doc["activity_name"]) == (3004, "Create")
    assert doc["entity"] == {"uid": "key_new", "type": "api_key"}


def test_privileges_to_a_user_and_to_a_group() -> None:
    """Role assignments are User Access Management, or Group Management for a group."""
    to_user = render_ocsf(samples.event("role_to_user"))
    assert (to_user["class_uid"], to_user["type_uid"]) == (3005, 300501)
    assert to_user["user"] == {"uid": "user-carol"}
    assert to_user["privileges"] == ["ra_1"]
    assert to_user["resources"] == [{"uid": "proj_abc", "type": "project"}]
    to_group = render_ocsf(samples.event("role_to_group"))
    assert (to_group["class_uid"], to_group["type_uid"]) == (3006, 300602)
    assert to_group["class_name"] == "Group Management"
    assert to_group["group"] == {"uid": "group_7"}


def test_account_change_for_a_service_account_actor() -> None:
    """user.added is Account Change on the added user; a service-account key is a Service user."""
    added = render_ocsf(samples.event("user"))
    assert (added["class_uid"], added["activity_id"]) == (3001, 1)
    assert added["user"] == {"uid": "user-carol", "type_id": 1, "type": "User"}
    by_service = render_ocsf(samples.event("project"))
    assert by_service["actor"]["user"]["type"] == "Service"


def test_unknowns_go_to_unmapped() -> None:
    """Unknown actor kinds, ja3/ja4, the payload and the target kind are kept under unmapped."""
    doc = render_ocsf(samples.event("unknown_actor_kind"))
    assert "actor" not in doc
    assert doc["unmapped"]["actor_type"] == "workload_identity"
    assert doc["unmapped"]["actor_detail"] == {
        "workload_identity": {"id": "wi_1", "issuer": "https://x"}
    }
    assert doc["unmapped"]["payload"]["data"]["name"] == "New"


def test_required_subject_when_the_event_names_none() -> None:
    """A sign-in with a null actor still satisfies Authentication's required user."""
    raw = samples.api("login.failed", {"error_code": "x"}, None)
    doc = render_ocsf(AuditEvent.from_api(raw))
    assert doc["user"] == {"name": "Unknown"}
    assert ocsf_validator.validate(doc) == []


def test_bytes_renderer_is_json() -> None:
    """`renderer("ocsf")` serializes this module's document."""
    event = samples.event("tenant")
    assert orjson.loads(renderer("ocsf")(event)) == render_ocsf(event)
