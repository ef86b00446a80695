"""What operators copy into their SIEM: the Splunk app files and the Elasticsearch templates
parse, name what they must, and agree with the documents shipper emits."""

from __future__ import annotations

import configparser
import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from docgen.mapping_reference import cim_fields, splunk_lookup_csv
from shipper.emulator import generate_events
from shipper.model.event import AuditEvent, normalize
from shipper.render.ecs import render_ecs
from shipper.render.mapping import mapping_for, table
from tests.render import ecs_validator, samples

ROOT = Path(__file__).resolve().parents[2]
SPLUNK = ROOT / "deploy" / "splunk"
ELASTIC = ROOT / "deploy" / "elastic"
CIM_ACTIONS = {
    "Authentication": {"success", "failure"},
    "Change": {"acl_modified", "cleared", "created", "deleted", "modified", "read", "stopped"},
}


def conf(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        interpolation=None, delimiters=("=",), comment_prefixes=("#",), strict=True
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SPLUNK / name).read_text())
    return parser


def pcre(pattern: str) -> re.Pattern[str]:
    """Splunk's PCRE named groups and named back-references, in Python's spelling."""
    pattern = re.sub(r"\\k<(\w+)>", r"(?P=\1)", pattern)
    return re.compile(pattern.replace("(?<", "(?P<"))


def sample_events() -> list[AuditEvent]:
    hostile = samples.api("user.added", {"id": "user-x"}, None, 99)
    hostile["id"] = 'x",\\"effective_at\\":1,"'
    raws = [*samples.FAMILIES.values(), hostile]
    raws += generate_events(150, start=1_700_000_000, end=1_700_050_000, seed=5, hostile_ratio=0.3)
    return [AuditEvent.from_api(r, organization="acme") for r in raws]


def props() -> configparser.SectionProxy:
    return conf("props.conf")["openai:audit"]


def test_props_has_the_parsing_essentials() -> None:
    """JSON search-time extraction, no line merging, a generous TRUNCATE, epoch-seconds time."""
    stanza = props()
    assert stanza["KV_MODE"] == "json"
    assert stanza["SHOULD_LINEMERGE"] == "false"
    assert int(stanza["TRUNCATE"]) >= 100_000
    assert stanza["TIME_FORMAT"] == "%s"
    assert stanza["TZ"] == "UTC"


@pytest.mark.parametrize("shape", ["raw", "normalized"])
def test_time_prefix_finds_effective_at_in_both_shapes(shape: str) -> None:
    """TIME_PREFIX lands on the top-level effective_at, even when a string value mimics it."""
    prefix = pcre(props()["TIME_PREFIX"])
    for event in sample_events():
        doc = event.raw if shape == "raw" else normalize(event)
        line = orjson.dumps(doc).decode()
        match = prefix.search(line)
        assert match is not None
        assert line[match.end() :].startswith(str(event.effective_at)), event.id


def test_raw_target_extraction_reads_the_type_keyed_payload() -> None:
    """The raw shape's EXTRACT finds the payload id under the key equal to the type."""
    extract = pcre(props()["EXTRACT-openai_raw_target"])
    checked = 0
    for event in sample_events():
        payload = event.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
            continue
        if next(iter(payload)) != "id" or '"' in payload["id"] or "\\" in payload["id"]:
            continue
        match = extract.search(orjson.dumps(event.raw).decode())
        assert match is not None and match.group("openai_raw_target_id") == payload["id"]
        checked += 1
    assert checked > 50


def test_lookup_is_the_mapping_table() -> None:
    """The shipped lookup CSV is exactly what the mapping table generates."""
    transforms = conf("transforms.conf")
    lookup_line = props()["LOOKUP-openai_audit_event_types"]
    stanza = lookup_line.split()[0]
    filename = transforms[stanza]["filename"]
    assert (SPLUNK / "lookups" / filename).read_text() == splunk_lookup_csv()


def _lookup() -> list[dict[str, str]]:
    text = (SPLUNK / "lookups" / "openai_audit_event_types.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def test_lookup_lands_every_type_in_a_cim_data_model() -> None:
    """Sign-ins are Authentication, everything else Change, with CIM's action vocabulary."""
    rows = _lookup()
    assert {r["type"] for r in rows} == set(table().rows)
    for row in rows:
        auth = row["type"].startswith(("login.", "logout."))
        assert row["cim_datamodel"] == ("Authentication" if auth else "Change")
        assert row["cim_action"] in CIM_ACTIONS[row["cim_datamodel"]], row


def test_eventtypes_and_tags_feed_the_data_models() -> None:
    """Each eventtype is tagged for its data model: authentication, change, change+account."""
    eventtypes, tags = conf("eventtypes.conf"), conf("tags.conf")
    expected = {
        "openai_audit_authentication": {"authentication"},
        "openai_audit_change": {"change"},
        "openai_audit_account_management": {"change", "account"},
    }
    for name, wanted in expected.items():
        assert 'sourcetype="openai:audit"' in eventtypes[name]["search"]
        enabled = {k for k, v in tags[f"eventtype={name}"].items() if v == "enabled"}
        assert enabled == wanted


def _fallback_action(event_type: str) -> str:
    """Evaluate props.conf's EVAL-action case() the way Splunk would."""
    clause = re.compile(r'match\(type, "([^"]+)"\)(?: AND match\(type, "([^"]+)"\))?, "(\w+)"')
    for first, second, value in clause.findall(props()["EVAL-action"]):
        if re.search(first, event_type) and (not second or re.search(second, event_type)):
            return str(value)
    return "modified"


def test_action_fallback_agrees_with_the_default_rule() -> None:
    """For types newer than the lookup, the EVAL fallback says what shipper's default rule says."""
    for verb in [*table().verbs, "frobbed"]:
        new_type = f"new_thing.{verb}"
        assert _fallback_action(new_type) == cim_fields(mapping_for(new_type))["cim_action"], verb
    assert _fallback_action("login.failed") == "failure"
    assert _fallback_action("logout.succeeded") == "success"


# --- Elasticsearch


def template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ELASTIC / name).read_text())
    return data


def test_index_template_targets_the_sink_default_data_stream() -> None:
    """The index template matches logs-openai.audit-*, makes a data stream, beats `logs`."""
    index = template("index_template.json")
    assert index["index_patterns"] == ["logs-openai.audit-*"]
    assert index["data_stream"] == {}
    assert index["priority"] > 100
    assert "logs-openai.audit@mappings" in index["composed_of"]
    assert (ELASTIC / "README.md").read_text().count("logs-openai.audit@mappings") >= 1


def _properties() -> dict[str, Any]:
    mappings = template("component_template.json")["template"]["mappings"]
    assert mappings["dynamic"] is False
    assert mappings["properties"]["openai"]["dynamic"] is False
    props: dict[str, Any] = mappings["properties"]
    return props


def _mapped_fields(props: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, spec in props.items():
        if "properties" in spec:
            out |= _mapped_fields(spec["properties"], f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = spec["type"]
    return out


def test_ecs_fields_are_mapped_with_ecs_types() -> None:
    """Every ECS field in the template has the type ecs_flat.yml gives it."""
    for name, es_type in _mapped_fields(_properties()).items():
        if not name.startswith("openai."):
            assert ecs_validator.ecs_fields()[name]["type"] == es_type, name


def _uncovered(doc: dict[str, Any], props: dict[str, Any], prefix: str = "") -> list[str]:
    missing = []
    for key, value in doc.items():
        spec = props.get(key)
        name = f"{prefix}{key}"
        if spec is None:
            missing.append(name)
        elif "properties" in spec:
            missing += _uncovered(value, spec["properties"], f"{name}.")
        elif isinstance(value, dict) and spec["type"] not in ("flattened", "geo_point"):
            missing.append(f"{name} (object under a {spec['type']} field)")
    return missing


def test_template_covers_every_document_shipper_emits() -> None:
    """Every leaf of every ECS document (families, emulator, hostile) is mapped by the template."""
    props = _properties()
    for event in sample_events():
        assert _uncovered(render_ecs(event), props) == [], event.id
