"""What operators install for ChatGPT compliance records: the Splunk stanzas, eventtypes and tags
for `openai:compliance:<type>`, and the Elasticsearch templates for their ECS documents, checked
against every packaged sample and the hand-written type variants in tests/data, rendered as the
sinks send them."""

from __future__ import annotations

import copy
import datetime as dt
import ipaddress
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.model.event import ComplianceRecord
from shipper.render import document_renderer
from shipper.render.compliance import OTHER_SOURCETYPE, TYPES, render_ecs, sourcetype
from shipper.render.compliance.record import dig, view_of
from shipper.render.compliance.types import _VERB_WORDS, verb_of
from sinks.splunk_hec.protocol import Envelope, envelope
from tests.render import compliance_samples as cs
from tests.render import ecs_validator
from tests.render.splunk_model import (
    Fields,
    Search,
    Stanza,
    kv_json,
    read_conf,
    stanzas,
    tags_of,
)

ROOT = Path(__file__).resolve().parents[2]
SPLUNK = ROOT / "deploy" / "splunk"
ELASTIC = ROOT / "deploy" / "elastic"
VARIANTS = ROOT / "tests" / "data" / "compliance-variants.jsonl"
PREFIX = "openai:compliance:"
CIM_CHANGE_ACTIONS = {"acl_modified", "created", "deleted", "modified", "read"}


def variant_records() -> list[dict[str, Any]]:
    """Hand-written records with the type variations EVENT-TYPES.md documents (tests/data)."""
    return [orjson.loads(line) for line in VARIANTS.read_text().splitlines() if line.strip()]


def all_records() -> list[dict[str, Any]]:
    return cs.records() + variant_records()


def record_ids() -> list[str]:
    return [f"{r.get('type')}-{str(r.get('event_id'))[-4:]}" for r in all_records()]


RECORDS = all_records()
IDS = record_ids()


# --- Splunk: the record as HEC indexes it


def props() -> dict[str, Stanza]:
    return {s.name: s for s in stanzas(read_conf(SPLUNK / "props.conf"))}


def compliance_stanzas() -> dict[str, Stanza]:
    return {name: s for name, s in props().items() if name.startswith(PREFIX)}


def hec_event(record: ComplianceRecord, shape: str, *, indexed: bool = True) -> tuple[str, Fields]:
    """`_raw` and the default and indexed fields of a record sent by a splunk_hec sink with
    `sourcetype` and `source` left unset, as docs/compliance-siem.md sets it up: the record
    goes under its type's sourcetype."""
    meta = Envelope(None, None, None, None, indexed)
    sent = orjson.loads(envelope(record, document_renderer(shape)(record), meta))
    assert sent["sourcetype"] == sourcetype(record.type)
    given: Fields = {"sourcetype": [sent["sourcetype"]], "source": [sent["source"]]}
    for key, value in sent.get("fields", {}).items():
        given[key] = [value]
    return orjson.dumps(sent["event"]).decode(), given


def search_fields(raw: dict[str, Any], shape: str, *, indexed: bool = True) -> Fields:
    record = cs.record(raw)
    text, given = hec_event(record, shape, indexed=indexed)
    return props()[sourcetype(record.type)].search_time(text, given)


def one(fields: Fields, name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def test_every_record_type_has_a_stanza_like_the_audit_one() -> None:
    """Each known type and the fallback sourcetype has a stanza with the audit stanza's parsing."""
    found = compliance_stanzas()
    wanted = {info.sourcetype for info in TYPES.values()} | {OTHER_SOURCETYPE}
    assert set(found) == wanted
    audit = props()["openai:audit"].settings
    for stanza in found.values():
        settings = stanza.settings
        for key in ("SHOULD_LINEMERGE", "LINE_BREAKER", "TRUNCATE", "CHARSET", "KV_MODE", "TZ"):
            assert settings[key] == audit[key], (stanza.name, key)
        assert "INDEXED_EXTRACTIONS" not in settings  # KV_MODE = json already extracts
        assert settings["TIME_FORMAT"] == "%Y-%m-%dT%H:%M:%S"
        assert stanza.settings["EVAL-vendor_product"] == '"OpenAI ChatGPT Enterprise"'


@pytest.mark.parametrize("shape", ["raw", "normalized"])
def test_time_prefix_finds_the_records_own_time(shape: str) -> None:
    """TIME_PREFIX/TIME_FORMAT read the record's `timestamp` (to the second) in both shapes."""
    checked = 0
    for raw in RECORDS:
        record = cs.record(raw)
        text, _ = hec_event(record, shape)
        found = props()[sourcetype(record.type)].event_time(text)
        stamp = raw.get("timestamp") if shape == "raw" else view_of(record).timestamp
        wanted = dt.datetime.fromisoformat(stamp).replace(microsecond=0) if stamp else None
        assert found == wanted, (record.id, text[:200])
        checked += wanted is not None
    assert checked >= len(RECORDS) - 1  # the COSTS variant has no timestamp in the raw shape


def test_time_prefix_is_not_fooled_by_a_value_that_mimics_it() -> None:
    """A string value holding `,"timestamp":"1999-..."` before the real key is not taken."""
    raw = {**cs.records()[0], "event_id": 'x,"timestamp":"1999-01-01T00:00:00Z",'}
    for shape in ("raw", "normalized"):
        record = cs.record(raw)
        text, _ = hec_event(record, shape)
        found = props()[sourcetype(record.type)].event_time(text)
        assert found == dt.datetime.fromisoformat(raw["timestamp"]).replace(microsecond=0)


def _actor_name(raw: dict[str, Any]) -> str | None:
    actor = view_of(cs.record(raw)).actor
    return actor.user_email or actor.user_id or actor.api_key_id or actor.system_id


def _cim_change_action(record_type: str, action: str | None) -> str:
    if record_type == "AUDIT_LOG" and "ROLE" in (action or "").upper().split("_"):
        return "acl_modified"
    verb = verb_of(action)
    return {"create": "created", "delete": "deleted", "read": "read"}.get(verb or "", "modified")


def expected_tags(raw: dict[str, Any]) -> set[str]:
    """The CIM tags a record must get: its type's data models (`TYPES[...].cim`), narrowed per
    record where docs/formats.md says so."""
    view = view_of(cs.record(raw))
    models = set(TYPES[view.record_type].cim) if view.record_type in TYPES else set()
    action = (view.action or "").upper()
    if view.record_type == "CODEX_SECURITY_LOG":
        models = {"Vulnerabilities"} if dig(view.details, "finding_id") else {"Change"}
    if view.record_type == "CUSTOM_AGENTS_LOG" and not (
        action in {"AGENT_CREATED", "AGENT_UPDATED", "AGENT_PUBLISHED", "AGENT_DELETED"}
        or action.startswith("TRIGGER_")
    ):
        models = set()
    tags = {
        "Authentication": {"authentication"},
        "Change": {"change"},
        "Web": {"web"},
        "Vulnerabilities": {"vulnerability", "report"},
    }
    found = set().union(*(tags[m] for m in models)) if models else set()
    words = set(action.split("_"))
    identity = {"USER", "ROLE", "INVITE", "MEMBER", "ACCOUNT", "SESSION", "SCIM", "GROUP"}
    if view.record_type == "AUDIT_LOG" and words & identity:
        found.add("account")
    return found


def promised(raw: dict[str, Any]) -> dict[str, str | None]:
    """The CIM fields the stanza of a record's type promises (docs/compliance-siem.md), with the
    value each must have, computed from the record itself; None: any non-empty value."""
    view = view_of(cs.record(raw))
    out: dict[str, str | None] = {"vendor_product": "OpenAI ChatGPT Enterprise"}
    tags = expected_tags(raw)
    user = (
        _actor_name(raw)
        if view.record_type != "COSTS"
        else view.raw["payload"]["identity"]["email"]
    )
    out["user"] = user
    ip = dig(view.raw, "request_metadata", "client_ip")
    if "authentication" in tags:
        failed = "fail" in (view.action or "").lower()
        out |= {"action": "failure" if failed else "success", "app": "chatgpt", "dest": None}
        out |= {"signature": view.action, "signature_id": view.action}
        if ip:
            out |= {"src": ip, "src_ip": ip}
    if "change" in tags:
        out |= {"action": _cim_change_action(view.record_type, view.action)}
        out |= {"object": None, "object_category": None, "change_type": None}
        out |= {"dest": None, "command": view.action}
        if view.record_type != "AUDIT_LOG":  # an admin action names no object id of its own
            out["object_id"] = None
        if view.outcome in ("success", "failure"):
            out["status"] = view.outcome
    if "vulnerability" in tags:
        finding = str(dig(view.details, "finding_id"))
        out |= {"signature": finding, "signature_id": finding, "dest": None}
        out |= {"category": "codex_security", "object_category": "finding"}
        criticality = dig(view.details, "updated_fields", "criticality")
        if criticality:
            out["severity"] = str(criticality).lower()
    if "web" in tags:
        out |= {"app": view.raw["app_name"], "dest": view.raw["app_name"]}
        if view.network.user_agent:
            out["http_user_agent"] = view.network.user_agent
    return out


@pytest.mark.parametrize("indexed", [True, False], ids=["indexed-fields", "no-indexed-fields"])
@pytest.mark.parametrize("shape", ["raw", "normalized"])
@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_each_record_yields_the_cim_fields_its_stanza_promises(
    raw: dict[str, Any], shape: str, indexed: bool
) -> None:
    """Every sample and variant, as the HEC sink sends it, gets each promised CIM field, with
    the value the record itself says (never the string "null" of a JSON null)."""
    fields = search_fields(raw, shape, indexed=indexed)
    for name, value in promised(raw).items():
        got = one(fields, name)
        assert got, (name, fields.keys())
        assert got != "null", name
        if value is not None:
            assert got == value, name
    if "action" in fields and "change" in expected_tags(raw):
        assert one(fields, "action") in CIM_CHANGE_ACTIONS


@pytest.mark.parametrize("shape", ["raw", "normalized"])
@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_eventtypes_tag_each_record_for_its_data_models(raw: dict[str, Any], shape: str) -> None:
    """The compliance eventtypes give each record exactly the tags of its CIM data models."""
    eventtypes, tags = read_conf(SPLUNK / "eventtypes.conf"), read_conf(SPLUNK / "tags.conf")
    matched = tags_of(search_fields(raw, shape), eventtypes, tags)
    assert not [name for name in matched if name.startswith("openai_audit_")]
    assert set().union(*matched.values()) == expected_tags(raw)


def test_every_compliance_eventtype_is_tagged_and_reached() -> None:
    """Each compliance eventtype has tags and matches at least one sample or variant."""
    eventtypes, tags = read_conf(SPLUNK / "eventtypes.conf"), read_conf(SPLUNK / "tags.conf")
    names = {n for n in eventtypes.sections() if n.startswith("openai_compliance_")}
    reached: set[str] = set()
    for raw in RECORDS:
        for shape in ("raw", "normalized"):
            reached |= set(tags_of(search_fields(raw, shape), eventtypes, tags))
    assert names and names <= reached
    for name in names:
        assert [v for v in tags[f"eventtype={name}"].values() if v == "enabled"], name


def test_under_the_audit_sourcetype_a_sign_in_would_be_filed_as_a_change() -> None:
    """Why the guide keeps compliance records off a HEC sink left at `openai:audit`: the audit
    eventtypes would tag a failed sign-in `change`, not `authentication`."""
    record = cs.sample("AUTH_LOG", action="login_failed")
    meta = Envelope("openai:audit", "openai:audit_log", None, None, True)
    sent = orjson.loads(envelope(record, document_renderer("normalized")(record), meta))
    given: Fields = {"sourcetype": ["openai:audit"], "event_type": ["AUTH_LOG"]}
    fields = props()["openai:audit"].search_time(orjson.dumps(sent["event"]).decode(), given)
    eventtypes, tags = read_conf(SPLUNK / "eventtypes.conf"), read_conf(SPLUNK / "tags.conf")
    matched = tags_of(fields, eventtypes, tags)
    assert "openai_audit_change" in matched
    assert "authentication" not in set().union(*matched.values())


def _fields_seen() -> set[str]:
    """Every field name an extraction yields for some record, in either shape (before evals)."""
    seen: set[str] = set()
    for raw in RECORDS:
        record = cs.record(raw)
        stanza = props()[sourcetype(record.type)]
        for shape in ("raw", "normalized"):
            text, given = hec_event(record, shape)
            seen |= set(given) | set(kv_json(text))
            for pattern in stanza.extracts.values():
                if match := pattern.search(text):
                    seen |= {k for k, v in match.groupdict().items() if v is not None}
    return seen


def test_every_field_the_stanzas_read_exists() -> None:
    """No alias or calculated field reads a field name that no record ever has (a typo, a path
    into the wrong shape): each is extracted from some sample or variant."""
    seen = _fields_seen()
    for stanza in compliance_stanzas().values():
        assert stanza.reads() - seen == set(), stanza.name


def test_eventtypes_test_fields_that_exist() -> None:
    """Every field an eventtype's search tests is extracted or calculated for some record."""
    seen = _fields_seen()
    for stanza in compliance_stanzas().values():
        seen |= set(stanza.evals)
    eventtypes = read_conf(SPLUNK / "eventtypes.conf")
    for name in eventtypes.sections():
        if name.startswith("openai_compliance_"):
            assert Search.parse(eventtypes[name]["search"]).fields() - seen == set(), name


def test_verb_words_are_the_renderers() -> None:
    """The stanzas' verb extraction knows exactly the verb words ECS and OCSF classify by."""
    for stanza in compliance_stanzas().values():
        extract = stanza.settings.get("EXTRACT-openai_verb")
        if extract is None:
            continue
        words = extract.split("(?<openai_verb>")[1].split(")")[0].split("|")
        assert {w.upper() for w in words} == set(_VERB_WORDS), stanza.name


def test_a_missing_stanza_or_a_wrong_alias_is_caught() -> None:
    """The checks above fail when a stanza is gone or a calculated field reads a wrong name."""
    raw = cs.sample("AUTH_LOG", action="login_failed").raw
    broken = Stanza(
        "openai:compliance:auth_log", dict(props()["openai:compliance:auth_log"].settings)
    )
    broken.settings["EVAL-src"] = "coalesce(client_ipaddress, 'request_metadata.clientip')"
    record = cs.record(raw)
    text, given = hec_event(record, "normalized")
    assert one(broken.search_time(text, given), "src") is None
    assert broken.reads() - _fields_seen() == {"client_ipaddress", "request_metadata.clientip"}
    assert sourcetype("AUTH_LOG") in compliance_stanzas()


# --- Elasticsearch


def template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ELASTIC / name).read_text())
    return data


def mappings() -> dict[str, Any]:
    found: dict[str, Any] = template("compliance_component_template.json")["template"]["mappings"]
    return found


def test_compliance_index_template_targets_its_own_data_stream() -> None:
    """logs-openai.compliance-*: a data stream, above the built-in `logs` template, apart from
    the audit log's and from Elastic's own integration's data streams."""
    index = template("compliance_index_template.json")
    assert index["index_patterns"] == ["logs-openai.compliance-*"]
    assert index["data_stream"] == {}
    assert index["priority"] > 100
    assert index["composed_of"][0] == "logs-openai.compliance@mappings"
    assert template("index_template.json")["index_patterns"] == ["logs-openai.audit-*"]
    readme = (ELASTIC / "README.md").read_text()
    assert "compliance_component_template.json" in readme
    assert "logs-openai.compliance@mappings" in readme


def _leaves(props: dict[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for key, spec in props.items():
        if "properties" in spec:
            out |= _leaves(spec["properties"], f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = spec
    return out


def test_compliance_ecs_fields_have_ecs_types() -> None:
    """Every ECS field of the compliance template has the type ecs_flat.yml gives it; the root
    and the vendor namespace are not dynamic."""
    maps = mappings()
    assert maps["dynamic"] is False
    assert maps["properties"]["openai_chatgpt_enterprise"]["dynamic"] is False
    for name, spec in _leaves(maps["properties"]).items():
        if not name.startswith("openai_chatgpt_enterprise."):
            assert ecs_validator.ecs_fields()[name]["type"] == spec["type"], name


def _is_date(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    try:
        dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _is_ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


def _is_int(value: Any, bits: int) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    return isinstance(value, int) and -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


SCALAR_CHECKS: dict[str, Any] = {
    "keyword": lambda v: isinstance(v, str | int | float | bool),
    "wildcard": lambda v: isinstance(v, str | int | float | bool),
    "match_only_text": lambda v: isinstance(v, str | int | float | bool),
    "long": lambda v: _is_int(v, 64),
    "integer": lambda v: _is_int(v, 32),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "date": _is_date,
    "ip": _is_ip,
    "boolean": lambda v: isinstance(v, bool) or v in ("true", "false", ""),
}


def problems(doc: Any, spec: dict[str, Any], name: str) -> list[str]:
    """Why Elasticsearch would refuse or not index `doc` under mapping `spec` (none: it fits)."""
    if doc is None:
        return []
    kind = spec.get("type", "object")
    if kind == "object" and spec.get("enabled") is False:
        return []
    values = doc if isinstance(doc, list) and kind != "geo_point" else [doc]
    found: list[str] = []
    for value in values:
        if value is None:
            continue
        if "properties" in spec:
            if not isinstance(value, dict):
                found.append(f"{name}: a {type(value).__name__} where an object is mapped")
                continue
            for key, inner in value.items():
                sub, path = spec["properties"].get(key), f"{name}.{key}" if name else key
                if sub is None:
                    if not key.startswith("_sample"):  # the samples' own annotations
                        found.append(f"{path}: not mapped")
                    continue
                found += problems(inner, sub, path)
        elif kind == "flattened":
            if not isinstance(value, dict):
                found.append(f"{name}: a {type(value).__name__} under a flattened field")
        elif kind == "geo_point":
            if not (isinstance(value, dict) and set(value) == {"lat", "lon"}):
                found.append(f"{name}: not a geo_point")
        elif isinstance(value, dict | list):
            found.append(f"{name}: an object under a {kind} field")
        elif not SCALAR_CHECKS[kind](value):
            found.append(f"{name}: {value!r} is not a {kind}")
    return found


def fit(doc: dict[str, Any], maps: dict[str, Any]) -> list[str]:
    return problems(doc, {"properties": maps["properties"]}, "")


@pytest.mark.parametrize("raw", RECORDS, ids=IDS)
def test_every_compliance_document_fits_the_template(raw: dict[str, Any]) -> None:
    """Each sample's and variant's ECS document has every leaf mapped (or under a flattened or
    disabled field) with a value of the mapped type: nothing refused, nothing silently dropped."""
    assert fit(render_ecs(cs.record(raw)), mappings()) == []


def _documents() -> list[dict[str, Any]]:
    return [render_ecs(cs.record(raw)) for raw in RECORDS]


def _groups(maps: dict[str, Any]) -> dict[str, list[list[str]]]:
    """Mapped leaves by name, the vendor stream replaced by `*`: a field every stream maps the
    same way (its envelope) is one group."""
    groups: dict[str, list[list[str]]] = {}
    for name in _leaves(maps["properties"]):
        parts = name.split(".")
        key = name
        if parts[0] == "openai_chatgpt_enterprise" and len(parts) > 2:
            key = ".".join([parts[0], "*", *parts[2:]])
        groups.setdefault(key, []).append(parts)
    return groups


def _without(maps: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    changed = copy.deepcopy(maps)
    for parts in paths:
        node = changed["properties"]
        for part in parts[:-1]:
            node = node[part]["properties"]
        del node[parts[-1]]
    return changed


def _retyped(maps: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    changed = copy.deepcopy(maps)
    for parts in paths:
        node = changed["properties"]
        for part in parts[:-1]:
            node = node[part]["properties"]
        wrong = "long" if node[parts[-1]].get("type") == "boolean" else "boolean"
        node[parts[-1]] = {"type": wrong}
    return changed


def test_each_mapping_is_checked_by_some_document() -> None:
    """Removing any mapping, or giving it a wrong type, makes some document fail the check:
    every mapping is exercised by a sample or a variant, so the check above guards each one."""
    maps, docs = mappings(), _documents()
    for name, paths in _groups(maps).items():
        removed, retyped = _without(maps, paths), _retyped(maps, paths)
        assert any(fit(doc, removed) for doc in docs), f"{name}: no document has it"
        assert any(fit(doc, retyped) for doc in docs), f"{name}: a wrong type goes unseen"


def test_fields_that_change_type_are_flattened_or_disabled() -> None:
    """Fields documented to change JSON type between records are never typed as scalars."""
    streams = mappings()["properties"]["openai_chatgpt_enterprise"]["properties"]
    opaque = {
        # `value` a boolean or a string, `limit` "100" or 100, `after` a time or a token
        ("audit_log", "action_data"): "flattened",
        ("codex_log", "event_details", "tool_input"): "object",  # a string or an object
        ("conversation_message", "message", "content", "value"): "object",  # string, null or object
        ("app_log", "input"): "flattened",
        ("app_log", "output"): "flattened",
        ("custom_agents_log", "event_details", "agent_fields"): "flattened",
        ("codex_security_log", "event_details", "updated_fields"): "flattened",
        ("other",): "flattened",
    }
    for path, kind in opaque.items():
        node: dict[str, Any] = {"properties": streams}
        for part in path:
            node = node["properties"][part]
        assert node["type"] == kind, path
        assert kind != "object" or node["enabled"] is False, path
