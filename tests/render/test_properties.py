"""Properties over generated events, hostile ones included: every renderer always produces a
document that parses back and that its schema accepts, and no content can break CEF framing."""

from __future__ import annotations

import unicodedata
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.emulator import generate_events
from shipper.model.event import AuditEvent
from shipper.render import renderer
from shipper.render.cef import render_cef
from shipper.render.ecs import render_ecs
from shipper.render.mapping import table
from shipper.render.ocsf import render_ocsf
from tests.render import ecs_validator, ocsf_validator
from tests.render.cef_parser import parse

SPECIALS = ["\n", "\r", "\x00", "|", "=", "\\", "]", '"', "\u2028", "\x85", "\U0001f984", " ", "."]
# Events come from JSON parsed by orjson, which never yields lone surrogates.
chars = st.one_of(st.characters(codec="utf-8"), st.sampled_from(SPECIALS))
hostile = st.one_of(
    st.text(chars, max_size=40),
    st.builds(lambda s, n: s * n, st.text(chars, min_size=1, max_size=5), st.integers(200, 3000)),
)
ids = st.one_of(st.text(chars, min_size=1, max_size=30), st.from_regex(r"[a-z_]{3,12}-[0-9a-f]{8}"))
ips = st.one_of(
    st.ip_addresses().map(str),
    hostile,
    st.sampled_from(["fe80::1%eth0", "::ffff:1.2.3.4", "01.2.3.4", "1.2.3.4 ", ""]),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    hostile,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile, inner, max_size=4)
    ),
    max_leaves=12,
)
geo_value = st.one_of(
    json_scalars, st.sampled_from(["37.7", "-122.4", "AS13335", "US", "CA", "1e999"])
)
geo = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            ["country", "city", "region", "region_code", "asn", "latitude", "longitude", "x"]
        ),
        geo_value,
    ),
)
user = st.fixed_dictionaries({}, optional={"id": st.one_of(ids, json_scalars), "email": hostile})
session = st.fixed_dictionaries(
    {},
    optional={
        "user": st.one_of(user, json_values),
        "ip_address": st.one_of(ips, json_scalars),
        "user_agent": hostile,
        "ja3": hostile,
        "ja4": hostile,
        "ip_address_details": geo,
        "extra_field": json_values,
    },
)
api_key = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "type": st.sampled_from(["user", "service_account", "robot"]),
        "user": user,
        "service_account": st.fixed_dictionaries({"id": ids}),
    },
)
actors = st.one_of(
    st.none(),
    st.builds(lambda s: {"type": "session", "session": s}, session),
    st.builds(lambda k: {"type": "api_key", "api_key": k}, api_key),
    st.builds(lambda k, v: {"type": k, k: v}, hostile, json_values),
    json_values,
)
types = st.one_of(st.sampled_from(sorted(table().rows)), hostile, st.just("widget.failed"))


@st.composite
def api_events(draw: st.DrawFn) -> dict[str, Any]:
    event_type = draw(types)
    raw: dict[str, Any] = {
        "id": draw(ids),
        "object": "organization.audit_log",
        "type": event_type,
        "effective_at": draw(st.integers(0, 4_102_444_800)),
        "actor": draw(actors),
        event_type: draw(st.one_of(st.dictionaries(hostile, json_values, max_size=5), json_values)),
    }
    if draw(st.booleans()):
        raw["project"] = draw(
            st.one_of(st.fixed_dictionaries({"id": ids, "name": hostile}), json_values)
        )
    if draw(st.booleans()):
        raw["unexpected"] = draw(json_values)
    return raw


def events(raw: dict[str, Any]) -> AuditEvent:
    return AuditEvent.from_api(raw, organization="org|=\\\n")


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(api_events())
def test_ecs_always_valid_and_round_trips(raw: dict[str, Any]) -> None:
    """Any event renders to an ECS document the validator accepts and orjson reads back."""
    event = events(raw)
    doc = render_ecs(event)
    assert orjson.loads(renderer("ecs")(event)) == doc
    assert ecs_validator.validate(doc) == []


@PROPERTY
@given(api_events())
def test_ocsf_always_valid_and_round_trips(raw: dict[str, Any]) -> None:
    """Any event renders to an OCSF event the validator accepts and orjson reads back."""
    event = events(raw)
    doc = render_ocsf(event)
    assert orjson.loads(renderer("ocsf")(event)) == doc
    assert ocsf_validator.validate(doc) == []


def clean(value: str, newlines_ok: bool = True) -> str:
    """The test's own statement of what CEF may not carry: Cc, Cs, Zl, Zp characters."""
    keep = "\n\r" if newlines_ok else ""
    bad = {"Cc", "Cs", "Zl", "Zp"}
    return "".join(c for c in value if c in keep or unicodedata.category(c) not in bad)


def _email_of(raw: dict[str, Any]) -> Any:
    actor = raw.get("actor")
    if not isinstance(actor, dict) or actor.get("type") not in ("session", "api_key"):
        return None
    detail = actor.get(actor["type"])
    who = detail.get("user") if isinstance(detail, dict) else None
    return who.get("email") if isinstance(who, dict) else None


@PROPERTY
@given(api_events())
def test_cef_always_parses_back_to_the_same_values(raw: dict[str, Any]) -> None:
    """Any event gives one CEF line, 7 header fields, values identical after parsing."""
    line = render_cef(events(raw))
    assert not any(c in line for c in "\n\r\x00\u2028\u2029")
    cef = parse(line)
    assert cef.header["signature_id"] == (clean(raw["type"], newlines_ok=False) or "unknown")
    assert cef.extensions.get("externalId", "") == clean(raw["id"]).strip(" ")
    assert cef.extensions["rt"] == str(raw["effective_at"] * 1000)
    assert cef.extensions["cs2"] == "org|=\\\n"
    email = _email_of(raw)
    expected = clean(email).strip(" ") if isinstance(email, str) else ""
    assert cef.extensions.get("suser", "") == expected


def test_emulator_events_render_valid_in_every_format() -> None:
    """2,000 emulator events (20% hostile, unknown types and actors) are valid everywhere."""
    raws = generate_events(2000, start=1_700_000_000, end=1_700_200_000, seed=11, hostile_ratio=0.2)
    for raw in raws:
        event = AuditEvent.from_api(raw, organization="acme")
        assert ecs_validator.validate(render_ecs(event)) == [], raw["id"]
        assert ocsf_validator.validate(render_ocsf(event)) == [], raw["id"]
        line = render_cef(event)
        assert "\n" not in line
        assert parse(line).extensions["externalId"] == raw["id"]
