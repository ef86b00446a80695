"""Properties over generated compliance records, hostile ones included: any JSON value renders
in every format without an exception, and ECS, OCSF and CEF stay valid whatever the record holds."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from shipper.render import FORMATS, renderer
from shipper.render.compliance import TYPES, render_cef, render_ecs, render_ocsf
from tests.render import compliance_samples as cs
from tests.render import ecs_validator, ocsf_validator
from tests.render.cef_parser import parse
from tests.render.test_properties import PROPERTY, geo, hostile, ids, ips, json_values

times = st.one_of(
    st.datetimes().map(lambda t: t.isoformat() + "Z"),
    st.sampled_from(["2026-07-15T10:53:18Z", "2026-07-09T11:05:09.077133Z", "1784535002", ""]),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2026-07-20"]),
    hostile,
)
texts = st.one_of(hostile, st.just(""), json_values)
request_metadata = st.fixed_dictionaries(
    {},
    optional={
        "client_ip": st.one_of(ips, texts),
        "client_ip_details": st.one_of(
            geo, st.fixed_dictionaries({"asn": st.sampled_from(["AS29518", "29518", "", "AS"])})
        ),
        "client_user_agent": texts,
        "client_ja3": texts,
        "client_ja4": texts,
        "destination_hostname": st.one_of(st.none(), texts),
    },
)
actors = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["ACCOUNT_USER", "API_KEY", "AGENT", "SYSTEM", "NEW"])},
        optional={
            "user_id": texts,
            "user_email": texts,
            "redacted_id": texts,
            "id": texts,
            "name": texts,
            "product_id": texts,
            "agent_runtime": st.one_of(
                json_values,
                st.fixed_dictionaries(
                    {"delegator": st.fixed_dictionaries({}, optional={"user_email": texts})}
                ),
            ),
        },
    ),
    json_values,
)
details = st.one_of(
    st.dictionaries(
        st.sampled_from(
            [
                "detail_type",
                "status",
                "model",
                "finding_id",
                "pr_url",
                "error_code",
                "token_usage",
                "agent_id",
                "agent_fields",
                "tool_name",
                "updated_fields",
                "user_id",
                "new_role",
                "email_addresses",
                "group_id",
                "domains",
                "action",
            ]
        ),
        st.one_of(texts, st.fixed_dictionaries({"criticality": texts, "status": texts})),
        max_size=6,
    ),
    json_values,
)
record_types = st.one_of(st.sampled_from(sorted(TYPES)), hostile)


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """A record of the platform's envelope with any mix of fields present, absent or odd."""
    optional = {
        "event_id": ids,
        "type": record_types,
        "timestamp": times,
        "principal": st.one_of(st.fixed_dictionaries({"id": texts, "type": texts}), json_values),
        "actor": actors,
        "request_metadata": st.one_of(request_metadata, json_values),
        "workspace_id": texts,
        "client_id": texts,
        "event_type": texts,
        "event_details": details,
        "action": texts,
        "action_result": st.one_of(st.sampled_from(["SUCCESS", "BLOCKED", "ERROR"]), texts),
        "action_data": details,
        "log_type": texts,
        "output": json_values,
        "input": json_values,
        "message": st.one_of(
            json_values,
            st.fixed_dictionaries(
                {"author": st.fixed_dictionaries({}, optional={"type": texts, "model": texts})},
                optional={"content": st.fixed_dictionaries({"type": texts, "value": texts})},
            ),
        ),
        "payload": st.one_of(details, st.fixed_dictionaries({"day": texts, "hour": json_values})),
        "unexpected": json_values,
    }
    return draw(st.fixed_dictionaries({}, optional=optional))


@PROPERTY
@given(json_values)
def test_any_json_value_renders_in_every_format(value: Any) -> None:
    """Whatever JSON a record line holds, every format renders it without an exception."""
    event = cs.record(value if isinstance(value, dict) else {"value": value})
    for fmt in FORMATS:
        assert renderer(fmt)(event)


@PROPERTY
@given(records())
def test_any_record_renders_in_every_format(raw: dict[str, Any]) -> None:
    """Any envelope-shaped record renders in every format, and the JSON ones parse back."""
    event = cs.record(raw)
    for fmt in FORMATS:
        rendered = renderer(fmt)(event)
        if fmt != "cef":
            orjson.loads(rendered)


@PROPERTY
@given(records())
def test_ecs_is_always_valid(raw: dict[str, Any]) -> None:
    """Any record renders to an ECS document the strict validator accepts."""
    assert ecs_validator.validate(render_ecs(cs.record(raw))) == []


@PROPERTY
@given(records())
def test_ocsf_is_always_valid(raw: dict[str, Any]) -> None:
    """Any record renders to an OCSF 1.8.0 event the validator accepts."""
    assert ocsf_validator.validate(render_ocsf(cs.record(raw))) == []


@PROPERTY
@given(records())
def test_cef_always_parses(raw: dict[str, Any]) -> None:
    """Any record gives one CEF line that the strict parser reads, with the record's id."""
    event = cs.record(raw)
    line = render_cef(event)
    assert not any(c in line for c in "\n\r\x00\u2028\u2029")
    cef = parse(line)
    assert cef.header["product"] == "ChatGPT Compliance"
    assert cef.extensions["rt"].lstrip("-").isdigit()
