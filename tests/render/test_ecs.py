"""ECS rendering: golden documents per family, schema validity, and the fields users search on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shipper.model.event import AuditEvent
from shipper.render import document_renderer, renderer
from shipper.render.ecs import render_ecs
from tests.render import ecs_validator, samples
from tests.render.golden import as_text, check


@pytest.mark.parametrize("family", sorted(samples.FAMILIES))
def test_golden(family: str) -> None:
    """Each mapping family renders exactly as its reviewed golden document."""
    check(f"{family}.ecs.json", as_text(render_ecs(samples.event(family))))


@pytest.mark.parametrize("family", sorted(samples.FAMILIES))
def test_valid_ecs(family: str) -> None:
    """Every family's document passes the strict ECS 9.4 validator."""
    assert ecs_validator.validate(render_ecs(samples.event(family))) == []


def test_registered_renderers_produce_the_same_document() -> None:
    """`document_renderer("ecs")` and `renderer("ecs")` are this module's renderer."""
    event = samples.event("auth_failure")
    assert document_renderer("ecs")(event) == render_ecs(event)
    assert orjson.loads(renderer("ecs")(event)) == render_ecs(event)


def test_login_failure_fields() -> None:
    """A failed sign-in: authentication/start, outcome failure, user, IPv6 source and error."""
    doc = render_ecs(samples.event("auth_failure"))
    assert doc["event"] | {"id": None} == {
        "id": None,
        "kind": "event",
        "category": ["authentication"],
        "type": ["start"],
        "action": "login.failed",
        "outcome": "failure",
        "severity": 2,
        "provider": "openai",
        "module": "openai",
        "dataset": "openai.audit",
    }
    assert doc["@timestamp"] == "2024-07-12T17:09:52Z"
    assert doc["user"] == {
        "id": "user-alice",
        "email": "alice@example.com",
        "name": "alice@example.com",
        "domain": "example.com",
    }
    assert doc["source"]["ip"] == "2001:db8::7"
    assert doc["error"] == {"code": "invalid_password", "message": "Wrong email or password."}


def test_geo_strings_become_typed_values() -> None:
    """ip_address_details strings become ECS geo fields, a geo_point and an integer AS number."""
    source = render_ecs(samples.event("auth_success"))["source"]
    assert source["geo"] == {
        "country_iso_code": "US",
        "city_name": "San Francisco",
        "region_name": "California",
        "region_iso_code": "US-CA",
        "location": {"lat": 37.7749, "lon": -122.4194},
    }
    assert source["as"] == {"number": 1234}


def _with_session(**session: Any) -> AuditEvent:
    raw = samples.api("login.succeeded", {}, samples.session(**session))
    return AuditEvent.from_api(raw, organization=samples.ORG)


def test_garbage_geo_is_kept_under_openai_not_dropped_or_raised() -> None:
    """Unparseable geo values go to openai.audit.actor.ip_address_details, as sent."""
    garbage = {
        "country": "United States",
        "asn": "AS-x",
        "latitude": "north",
        "longitude": "9",
        "region_code": "CA",
        "postcode": "94107",
    }
    event = _with_session(ip="999.1.1.1", ip_address_details=garbage)
    doc = render_ecs(event)
    assert ecs_validator.validate(doc) == []
    assert "ip" not in doc["source"] and doc["source"]["address"] == "999.1.1.1"
    assert "geo" not in doc["source"] and "as" not in doc["source"]
    assert doc["openai"]["audit"]["actor"]["ip_address_details"] == garbage


def test_asn_with_prefix_and_out_of_range_coordinates() -> None:
    """`AS15169` is 15169; a latitude of 91 is not a location."""
    event = _with_session(ip_address_details={"asn": "AS15169", "latitude": "91", "longitude": "0"})
    doc = render_ecs(event)
    assert doc["source"]["as"]["number"] == 15169
    assert "geo" not in doc["source"]
    assert doc["openai"]["audit"]["actor"]["ip_address_details"] == {
        "latitude": "91",
        "longitude": "0",
    }


def test_the_type_string_is_a_value_never_a_field_name() -> None:
    """The payload sits at openai.audit.payload whatever the type; dots never make fields."""
    doc = render_ecs(samples.event("api_key"))
    assert doc["openai"]["audit"]["payload"] == {
        "id": "key_new",
        "data": {"scopes": ["api.model.request"]},
    }
    assert "api_key" not in doc and "api_key.created" not in doc["openai"]["audit"]
    assert doc["event"]["action"] == "api_key.created"


def test_service_account_actor() -> None:
    """A service-account key: service.id and related.user carry the account, the key id is kept."""
    doc = render_ecs(samples.event("project"))
    assert doc["service"] == {"id": "svc_9"}
    assert "user" not in doc
    assert doc["related"]["user"] == ["svc_9"]
    assert doc["openai"]["audit"]["actor"]["api_key"] == {
        "id": "key_svc_1",
        "type": "service_account",
    }
    assert doc["cloud"]["project"] == {"id": "proj_abc", "name": "Fraud detection"}


def test_targets_of_user_and_group_changes() -> None:
    """user.target for changed users and user principals; group.id for group principals."""
    assert render_ecs(samples.event("user"))["user"]["target"] == {"id": "user-carol"}
    assert render_ecs(samples.event("role_to_user"))["user"]["target"] == {"id": "user-carol"}
    assert render_ecs(samples.event("role_to_group"))["group"] == {"id": "group_7"}


def test_unknown_actor_kind_and_null_actor_keep_everything() -> None:
    """An unknown actor kind keeps its details; a null actor yields no user fields at all."""
    doc = render_ecs(samples.event("unknown_actor_kind"))
    assert doc["openai"]["audit"]["actor"]["type"] == "workload_identity"
    assert doc["openai"]["audit"]["actor"]["detail"] == {
        "workload_identity": {"id": "wi_1", "issuer": "https://x"}
    }
    null = render_ecs(samples.event("null_actor"))
    assert "user" not in null and "source" not in null and "related" not in null


def test_non_object_payload_and_extra_fields_are_kept() -> None:
    """A payload that is not an object is wrapped; undeclared top-level fields go to extra."""
    raw = samples.api("thing.done", ["a", 1], None, 3, **{"new_field": {"x": None}})
    doc = render_ecs(AuditEvent.from_api(raw))
    assert doc["openai"]["audit"]["payload"] == {"value": ["a", 1]}
    assert doc["openai"]["audit"]["extra"] == {"new_field": {"x": None}}
    assert ecs_validator.validate(doc) == []


def test_validator_can_fail() -> None:
    """The validator rejects unknown fields, wrong types, bad pairings and stray arrays."""
    doc = render_ecs(samples.event("auth_failure"))
    doc["event"]["type"] = ["creation"]
    doc["source"]["ip"] = "not-an-ip"
    doc["user"]["name"] = ["a", "b"]
    doc["colour"] = {"hue": "red"}
    errors = "\n".join(ecs_validator.validate(doc))
    for needle in (
        "event.type 'creation' not expected",
        "source.ip: 'not-an-ip' is not a valid ip",
        "user.name: ECS does not make this field an array",
        "colour.hue: not an ECS field",
    ):
        assert needle in errors
