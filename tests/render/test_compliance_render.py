"""Compliance-record renderings: every sample valid in ECS and OCSF, outcomes, Elastic's field
choices, CEF framing, and the dispatch that leaves audit events exactly as they were."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.model.event import AuditEvent, ComplianceRecord
from shipper.render import (
    FORMATS,
    document_renderer,
    occurred_ms,
    renderer,
    splunk_sourcetype,
)
from shipper.render.cef import render_cef as audit_cef
from shipper.render.compliance import (
    OTHER_SOURCETYPE,
    TYPES,
    render_cef,
    render_ecs,
    render_normalized,
    render_ocsf,
    sourcetype,
)
from shipper.render.ecs import render_ecs as audit_ecs
from shipper.render.ocsf import render_ocsf as audit_ocsf
from tests.render import compliance_samples as cs
from tests.render import ecs_validator, ocsf_validator, samples
from tests.render.cef_parser import parse

RECORDS = cs.records()
IDS = cs.sample_ids()


def test_the_samples_cover_every_known_type() -> None:
    """The packaged samples hold at least one record of each type in the type table."""
    assert {raw["type"] for raw in RECORDS} == set(TYPES)


@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_every_sample_is_valid_ecs(raw: dict[str, Any]) -> None:
    """Each sample record renders to an ECS 9.4 document with zero validator errors."""
    assert ecs_validator.validate(render_ecs(cs.record(raw))) == []


@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_every_sample_is_valid_ocsf(raw: dict[str, Any]) -> None:
    """Each sample record renders to an OCSF 1.8.0 event with zero validator errors."""
    assert ocsf_validator.validate(render_ocsf(cs.record(raw))) == []


@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_every_sample_is_valid_cef(raw: dict[str, Any]) -> None:
    """Each sample record renders to one CEF:0 line the strict parser accepts."""
    cef = parse(render_cef(cs.record(raw)))
    assert cef.header["vendor"] == "OpenAI" and cef.extensions["externalId"] == raw["event_id"]


@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_normalized_keeps_the_record(raw: dict[str, Any]) -> None:
    """The normalized document carries the event id, type and the whole record under `raw`."""
    doc = render_normalized(cs.record(raw))
    assert (doc["event_id"], doc["type"], doc["raw"]) == (raw["event_id"], raw["type"], raw)


@pytest.mark.parametrize(
    ("action", "outcome", "ecs_type", "ocsf_activity", "status_id"),
    [
        ("login_success", "success", "start", 1, 1),
        ("login_failed", "failure", "start", 1, 2),
        ("logout_success", "success", "end", 2, 1),
        ("token_issued", "success", "info", 99, 1),
    ],
)
def test_sign_in_outcomes(
    action: str, outcome: str, ecs_type: str, ocsf_activity: int, status_id: int
) -> None:
    """AUTH_LOG: ECS authentication with outcome, OCSF Authentication with activity and status."""
    event = cs.sample("AUTH_LOG", action=action)
    ecs = render_ecs(event)
    assert ecs["event"]["category"] == ["authentication"]
    assert (ecs["event"]["type"], ecs["event"]["outcome"]) == ([ecs_type], outcome)
    ocsf = render_ocsf(event)
    assert (ocsf["class_uid"], ocsf["activity_id"], ocsf["status_id"]) == (
        3002,
        ocsf_activity,
        status_id,
    )


def test_admin_action_results() -> None:
    """AUDIT_LOG: SUCCESS is success and BLOCKED failure, in ECS outcome and OCSF status."""
    blocked = cs.sample("AUDIT_LOG", action="INVITE_SEND")
    assert render_ecs(blocked)["event"]["outcome"] == "failure"
    assert render_ocsf(blocked)["status_id"] == 2
    role = cs.sample("AUDIT_LOG", action="USER_ROLE_UPDATED")
    ecs = render_ecs(role)
    assert ecs["event"]["outcome"] == "success"
    assert ecs["event"]["category"] == ["iam"] and "user" in ecs["event"]["type"]
    assert ecs["user"]["target"] == {"id": "user-Hs5Jt2Gk9Lp3Xq8Zw4Nm7Rb1"}
    ocsf = render_ocsf(role)
    assert (ocsf["class_uid"], ocsf["privileges"]) == (3005, ["manager"])


def test_compliance_api_calls_are_api_reads() -> None:
    """The Compliance API's own list call (API-key actor) is OCSF API Activity: Read."""
    listing = cs.sample("AUDIT_LOG", action="LIST_WORKSPACE_LOG_FILES")
    ocsf = render_ocsf(listing)
    assert (ocsf["class_uid"], ocsf["activity_id"]) == (6003, 2)
    assert ocsf["actor"]["user"]["programmatic_credentials"] == [
        {"uid": "sk-...q7Xw", "type": "API Key"}
    ]
    ecs = render_ecs(listing)
    assert ecs["destination"] == {"domain": "api.chatgpt.com"}
    assert "user" not in ecs


def test_elastic_parity_for_sign_ins() -> None:
    """AUTH_LOG fields sit where Elastic's integration puts them (ECS and its namespace)."""
    doc = render_ecs(cs.sample("AUTH_LOG", action="token_issued"))
    assert doc["user"]["id"] == "user-Hs5Jt2Gk9Lp3Xq8Zw4Nm7Rb1"
    assert doc["user"]["email"] == "li.wei@example.com"
    assert doc["user"]["domain"] == "example.com"
    assert doc["source"]["ip"] == "2001:db8:85a3::8a2e:370:7334"
    assert doc["source"]["geo"] == {
        "country_iso_code": "SG",
        "city_name": "Singapore",
        "region_name": "Central Singapore",
        "region_iso_code": "SG-01",
        "location": {"lat": 1.28967, "lon": 103.85007},
    }
    assert doc["source"]["as"] == {"number": 64501}
    assert doc["user_agent"]["original"].startswith("ChatGPT/1.2026.190")
    assert doc["tls"]["client"]["ja3"] == "773906b0efdefa24a7f2b8eb6985bf37"
    assert doc["event"]["action"] == "token_issued"
    assert doc["event"]["dataset"] == "openai_chatgpt_enterprise.auth_log"
    assert doc["organization"]["id"] == "3f2b8c1d-7a4e-4c55-9e21-6d0b5a9c4e10"
    auth_log = doc["openai_chatgpt_enterprise"]["auth_log"]
    assert auth_log["action_data"]["role"] == "standard-user"
    assert auth_log["request_metadata"]["client_ja4"] == "q13d0312h3_55b375c5d22e_6e3f8b2c1a90"


def test_elastic_parity_for_codex_and_findings() -> None:
    """Codex model, tokens and outcome, and finding id and severity, use Elastic's ECS fields."""
    response = render_ecs(cs.sample("CODEX_LOG", event_type="PROMPT_RESPONSE_RECEIVED"))
    gen_ai = response["gen_ai"]
    assert gen_ai["request"]["model"] == gen_ai["response"]["model"] == "gpt-5.5"
    assert gen_ai["usage"] == {"input_tokens": 18234, "output_tokens": 2210}
    assert gen_ai["operation"] == {"name": "chat"}
    assert response["event"]["outcome"] == "success"
    assert response["event"]["action"] == "prompt_response_received"
    finding = render_ecs(cs.sample("CODEX_SECURITY_LOG", event_type="SCAN_FINDING_UPDATED"))
    assert finding["vulnerability"]["id"] == "hid-7c31d9"
    assert finding["vulnerability"]["severity"] == "low"
    assert finding["event"]["category"] == ["vulnerability"]
    pr = render_ecs(cs.sample("CODEX_SECURITY_LOG", event_type="PROPOSED_PATCH_PR_CREATED"))
    assert pr["url"]["full"] == "https://github.com/example-org/payments-api/pull/412"


def test_codex_errors_fail_with_their_code() -> None:
    """A Codex response with status error: ECS failure with error.code, OCSF status Failure."""
    event = cs.sample("CODEX_LOG", event_type="PROMPT_RESPONSE_RECEIVED", status="error")
    ecs = render_ecs(event)
    assert ecs["event"]["outcome"] == "failure"
    assert ecs["error"]["code"] == "rate_limit_exceeded"
    assert ecs["user_agent"]["original"].startswith("codex_cli_rs/")
    ocsf = render_ocsf(event)
    assert (ocsf["status_id"], ocsf["status_code"]) == (2, "rate_limit_exceeded")


def test_finding_status_and_criticality_in_ocsf() -> None:
    """A finding set to wontfix with low criticality is a Suppressed Detection Finding, Low."""
    ocsf = render_ocsf(cs.sample("CODEX_SECURITY_LOG", event_type="SCAN_FINDING_UPDATED"))
    assert ocsf["class_uid"] == 2004 and ocsf["finding_info"]["uid"] == "hid-7c31d9"
    assert (ocsf["status_id"], ocsf["status"]) == (3, "Suppressed")
    assert (ocsf["severity_id"], ocsf["severity"]) == (2, "Low")


def test_agent_actor_acts_for_its_delegator() -> None:
    """An AGENT actor: the delegating user is the user, the agent is the acting app."""
    event = cs.sample("CUSTOM_AGENTS_LOG", event_type="MEMORY_READ")
    ecs = render_ecs(event)
    assert ecs["user"]["email"] == "dana.okafor@example.com"
    assert ecs["gen_ai"]["agent"]["id"] == "agt_4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b"
    ocsf = render_ocsf(event)
    assert ocsf["actor"]["app_name"] == "Vendor Intake Agent"
    assert ocsf["actor"]["app_uid"] == "agent-harness-5d21"
    assert (ocsf["class_uid"], ocsf["activity_id"]) == (6003, 2)
    normalized = render_normalized(event)
    assert normalized["actor_kind"] == "AGENT" and normalized["actor_delegated"] is True


def test_conversation_text_is_the_message_and_not_stored_twice() -> None:
    """A conversation message's text is ECS `message`, left out of the vendor namespace copy."""
    doc = render_ecs(cs.sample("CONVERSATION_MESSAGE"))
    assert doc["message"].startswith("Give me an outline")
    kept = doc["openai_chatgpt_enterprise"]["conversation_message"]["message"]
    assert kept["content"] == {"type": "text"}
    assert kept["id"] == "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9"


def test_costs_are_usage_metrics() -> None:
    """COSTS: ECS kind metric for the identity's usage; the bucket's user is user.*."""
    doc = render_ecs(cs.sample("COSTS"))
    assert doc["event"]["kind"] == "metric" and "category" not in doc["event"]
    assert doc["user"]["email"] == "li.wei@example.com"
    assert doc["user"]["full_name"] == "Li Wei"
    assert doc["gen_ai"]["usage"] == {"input_tokens": 61220, "output_tokens": 3907}


def test_empty_strings_in_request_metadata_are_absent() -> None:
    """`""` geo, JA3 and JA4 values produce no fields (and no leftovers), in every format."""
    event = cs.sample("AUTH_LOG", action="login_failed")
    ecs = render_ecs(event)
    assert ecs["source"] == {"address": "198.51.100.201", "ip": "198.51.100.201"}
    assert "tls" not in ecs
    assert render_ocsf(event)["src_endpoint"] == {"ip": "198.51.100.201"}
    normalized = render_normalized(event)
    assert not any(
        key.startswith("client_geo") or key.startswith("client_ja") for key in normalized
    )


@pytest.mark.parametrize("asn", ["AS29518", "29518"])
def test_asn_with_or_without_prefix(asn: str) -> None:
    """`AS29518` and `29518` are both AS number 29518."""
    raw = {**RECORDS[0], "request_metadata": {"client_ip_details": {"asn": asn}}}
    assert render_normalized(cs.record(raw))["client_geo_asn"] == 29518
    assert render_ecs(cs.record(raw))["source"]["as"] == {"number": 29518}


def test_time_falls_back_to_the_file_end() -> None:
    """Without a usable timestamp, @timestamp is the file's end time, and the fallback is said."""
    raw = {"event_id": "e-1", "type": "AUTH_LOG", "timestamp": "1784535002"}
    doc = render_ecs(cs.record(raw))
    assert doc["@timestamp"] == "2026-07-21T00:00:00Z"
    assert doc["openai_chatgpt_enterprise"]["auth_log"]["time_source"] == "file"
    assert render_ocsf(cs.record(raw))["time"] == cs.FILE_END * 1000


@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_occurred_ms_is_the_time_every_rendering_gives_the_record(raw: dict[str, Any]) -> None:
    """`occurred_ms`, what sinks stamp, is the record's time as its renderings read it (OCSF
    `time`, CEF `rt`), not the file's end time, whether the record is held as a dict or bytes."""
    for record in (
        cs.record(raw),
        ComplianceRecord("e", raw["type"], cs.FILE_END, json=orjson.dumps(raw)),
    ):
        assert occurred_ms(record) == render_ocsf(record)["time"]
        assert str(occurred_ms(record)) == parse(render_cef(record)).extensions["rt"]
        assert occurred_ms(record) < cs.FILE_END * 1000


def test_occurred_ms_of_an_audit_event_reads_no_json() -> None:
    """An audit event's time is `effective_at` * 1000, read without parsing its JSON (bytes that
    do not parse prove it); a compliance record with no time of its own, or JSON that is not an
    object, has its file's end time."""
    assert occurred_ms(AuditEvent("a-1", "api_key.created", 1_720_804_190, json=b"{no")) == (
        1_720_804_190_000
    )
    for held in ({"event_id": "e-1", "type": "AUTH_LOG", "timestamp": "soon"}, [1, 2]):
        assert occurred_ms(cs.record(held)) == cs.FILE_END * 1000


def test_splunk_sourcetype_is_the_audit_logs_or_the_record_types() -> None:
    """`splunk_sourcetype`: openai:audit for an audit event (of any type), the type's own for a
    compliance record, openai:compliance:logs for a type shipper does not know."""
    audit = AuditEvent("a-1", "AUTH_LOG", 1, json=b"{}")
    assert splunk_sourcetype(audit) == "openai:audit"
    for record_type in [*TYPES, "NEW_TYPE"]:
        record = cs.record({"event_id": "e", "type": record_type})
        assert splunk_sourcetype(record) == sourcetype(record_type)
    assert splunk_sourcetype(cs.record({"type": "NEW_TYPE"})) == OTHER_SOURCETYPE


def test_costs_without_timestamp_use_the_hour_bucket() -> None:
    """A COSTS record without timestamp is timed at the end of its day/hour bucket."""
    raw = {"event_id": "c-1", "type": "COSTS", "payload": {"day": "2026-07-20", "hour": 22}}
    assert render_normalized(cs.record(raw))["timestamp"] == "2026-07-20T22:59:59Z"


def test_unknown_type_renders_generically() -> None:
    """A type new to us keeps its name as a value, never as a field name, in every format."""
    raw: dict[str, Any] = {"event_id": "n-1", "type": "NEW_THING_LOG"}
    raw |= {"timestamp": "2026-07-20T10:00:00Z"}
    raw |= {"actor": {"type": "ROBOT", "id": "r2"}, "event_type": "BEEPED", "x": {"y": 1}}
    event = cs.record(raw)
    ecs = render_ecs(event)
    assert ecs_validator.validate(ecs) == []
    assert ecs["openai_chatgpt_enterprise"]["other"]["type"] == "NEW_THING_LOG"
    assert ecs["event"]["action"] == "beeped"
    ocsf = render_ocsf(event)
    assert ocsf_validator.validate(ocsf) == []
    assert ocsf["class_uid"] == 6003 and ocsf["unmapped"]["x"] == {"y": 1}
    assert ocsf["actor"] == {"app_name": "r2"}
    assert parse(render_cef(event)).header["signature_id"] == "NEW_THING_LOG:BEEPED"


def test_cef_escapes_hostile_content() -> None:
    """Pipes, equals signs, backslashes and newlines in a record cannot break the CEF line."""
    raw = {
        "event_id": "id|with=odd\\chars",
        "type": "AUDIT|LOG",
        "action": "X=1\nY|2",
        "actor": {"type": "ACCOUNT_USER", "user_email": "a=b\\c@example.com\r\nrt=0"},
    }
    line = render_cef(cs.record(raw))
    assert "\n" not in line and "\r" not in line
    cef = parse(line)
    assert cef.header["signature_id"] == "AUDIT|LOG:X=1Y|2"
    assert cef.extensions["act"] == "X=1\nY|2"
    assert cef.extensions["suser"] == "a=b\\c@example.com\r\nrt=0"
    assert cef.extensions["externalId"] == "id|with=odd\\chars"


def test_sourcetypes_follow_splunks_add_on() -> None:
    """Sourcetypes are `openai:compliance:<type lowercased>`; unknown types get the fallback."""
    assert sourcetype("AUTH_LOG") == "openai:compliance:auth_log"
    assert sourcetype("APP_AUTH_LOG") == "openai:compliance:app_auth_log"
    assert sourcetype("SOMETHING_NEW") == OTHER_SOURCETYPE == "openai:compliance:logs"
    assert TYPES["AUTH_LOG"].cim == ("Authentication",)


@pytest.mark.parametrize("fmt", ["normalized", "ecs", "ocsf"])
def test_document_renderers_route_by_source(fmt: str) -> None:
    """`document_renderer` gives compliance records their mapping and audit events theirs."""
    compliance = {"normalized": render_normalized, "ecs": render_ecs, "ocsf": render_ocsf}[fmt]
    audit = {"ecs": audit_ecs, "ocsf": audit_ocsf}.get(fmt)
    render = document_renderer(fmt)
    record = cs.sample("AUTH_LOG")
    assert render(record) == compliance(record)
    assert orjson.loads(renderer(fmt)(record)) == compliance(record)
    event = samples.event("auth_failure")
    if audit is not None:
        assert render(event) == audit(event)


def test_cef_and_raw_route_by_source() -> None:
    """CEF routes by source; raw is the record's own bytes for both sources."""
    record = cs.sample("APP_LOG")
    event = samples.event("auth_success")
    cef = renderer("cef")
    assert cef(record).decode() == render_cef(record)
    assert cef(event).decode() == audit_cef(event)
    assert renderer("raw")(record) == record.json
    assert document_renderer("raw")(record) == record.raw


@pytest.mark.parametrize("fmt", FORMATS)
def test_audit_events_render_as_before(fmt: str) -> None:
    """An audit event through the routed renderer equals the audit renderer's own output."""
    direct = {"ecs": audit_ecs, "ocsf": audit_ocsf}
    for name in sorted(samples.FAMILIES):
        event: AuditEvent = samples.event(name)
        rendered = renderer(fmt)(event)
        if fmt in direct:
            assert orjson.loads(rendered) == direct[fmt](event)
        elif fmt == "cef":
            assert rendered.decode() == audit_cef(event)


def test_formats_page_lists_each_types_sourcetype_and_cim_models() -> None:
    """docs/formats.md's Splunk table agrees with the type table for every CIM-mapped type."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    for info in TYPES.values():
        if info.cim:
            row = f"| `{info.type}` | `{info.sourcetype}` | {info.cim[0]}"
            assert row in page, row
