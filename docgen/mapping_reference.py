"""The mapping table as documentation, generated from `shipper/data/event_mapping.json`.

`python -m docgen.mapping_reference > docs/reference/mappings.md` regenerates the page (the table
and one sample of each format; a test fails while the page is stale);
`python -m docgen.mapping_reference --splunk-lookup` prints `deploy/splunk/lookups/openai_audit_event_types.csv`.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import orjson

from shipper.model.event import AuditEvent, ComplianceRecord
from shipper.render import compliance
from shipper.render.cef import render_cef
from shipper.render.compliance.record import view_of as compliance_view
from shipper.render.ecs import render_ecs
from shipper.render.mapping import Mapping, mapping_for, table
from shipper.render.ocsf import CLASSES, render_ocsf

SAMPLE_EVENT = {
    "id": "audit_log-2f9c1b7e_20240712",
    "object": "organization.audit_log",
    "type": "api_key.updated",
    "effective_at": 1720804190,
    "project": {"id": "proj_abc", "name": "Fraud detection"},
    "actor": {
        "type": "session",
        "session": {
            "user": {"id": "user-xxx", "email": "user@example.com"},
            "ip_address": "203.0.113.7",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
            "ja3": "a497151ce4338a12c4418c44d375173e",
            "ja4": "q13d0313h3_55b375c5d22e_c7319ce65786",
            "ip_address_details": {
                "country": "US",
                "city": "San Francisco",
                "region": "California",
                "region_code": "CA",
                "asn": "1234",
                "latitude": "37.77490",
                "longitude": "-122.41940",
            },
        },
    },
    "api_key.updated": {
        "id": "key_xxxx",
        "changes_requested": {"scopes": ["api.model.request"]},
    },
}
SAMPLE_ORGANIZATION = "acme-prod"

LOOKUP_COLUMNS = (
    "type",
    "cim_datamodel",
    "cim_action",
    "change_type",
    "object_category",
    "openai_cim_account",
    "vendor_action",
    "severity",
    "severity_id",
    "ecs_category",
    "ocsf_class_uid",
)
_CIM_CHANGE_ACTIONS = {"creation": "created", "deletion": "deleted", "change": "modified"}
_CIM_USER_KINDS = frozenset({"user", "service_account", "membership", "invite"})


def _target_text(m: Mapping) -> str:
    if m.target is None:
        return "—"
    where = f" (`{m.target.id.text}`)" if m.target.id else ""
    return f"{m.target.kind}{where}"


def _row(m: Mapping, label: str) -> str:
    ecs = f"{','.join(m.ecs_category)} / {','.join(m.ecs_type)}"
    class_name = CLASSES[m.ocsf_class_uid][0]
    ocsf = f"{m.ocsf_class_uid} {class_name} / {m.ocsf_activity_id} {m.ocsf_activity_name}"
    return f"| {label} | {m.action} | {m.outcome} | {_target_text(m)} | {ecs} | {ocsf} | {m.severity} |"


def mapping_markdown() -> str:
    """One row per event type, plus the default rule (shown for a made-up `thing.created`)."""
    lines = [
        "| event type | action | outcome | target (id in payload) | ECS category / type "
        "| OCSF class / activity | severity |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row(m, f"`{t}`") for t, m in table().rows.items()]
    default = mapping_for("thing.created")
    lines.append(_row(default, "*any other type* (e.g. `thing.created`)"))
    return "\n".join(lines)


def cim_fields(m: Mapping) -> dict[str, str]:
    """The Splunk CIM reading of one mapping (lookup columns)."""
    if "authentication" in m.ecs_category:
        return {"cim_datamodel": "Authentication", "cim_action": m.outcome}
    kind = m.target.kind if m.target else ""
    account = "user" in m.ecs_type or "group" in m.ecs_type
    action = _CIM_CHANGE_ACTIONS.get(m.ecs_type[-1], "modified")
    if m.principal:
        action = "acl_modified"
    elif m.action == "looked_up":
        action = "read"
    return {
        "cim_datamodel": "Change",
        "cim_action": action,
        "change_type": "AAA" if "iam" in m.ecs_category else "configuration",
        "object_category": "user" if kind in _CIM_USER_KINDS else kind,
        "openai_cim_account": "true" if account else "false",
    }


def lookup_rows() -> list[dict[str, str]]:
    """The Splunk lookup: CIM fields for each event type (the props fall back for new types)."""
    rows = []
    for event_type, m in table().rows.items():
        row = dict.fromkeys(LOOKUP_COLUMNS, "")
        row |= {
            "type": event_type,
            "vendor_action": m.action,
            "severity": m.severity,
            "severity_id": str(m.severity_id),
            "ecs_category": ",".join(m.ecs_category),
            "ocsf_class_uid": str(m.ocsf_class_uid),
        }
        rows.append(row | cim_fields(m))
    return rows


def splunk_lookup_csv() -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=LOOKUP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(lookup_rows())
    return out.getvalue()


def samples() -> str:
    """The fixed sample event in every format, as markdown."""
    event = AuditEvent.from_api(SAMPLE_EVENT, organization=SAMPLE_ORGANIZATION)
    pretty = orjson.OPT_INDENT_2
    parts = [
        ("API object (`raw`)", "json", orjson.dumps(SAMPLE_EVENT, option=pretty).decode()),
        ("ECS (`ecs`)", "json", orjson.dumps(render_ecs(event), option=pretty).decode()),
        ("OCSF (`ocsf`)", "json", orjson.dumps(render_ocsf(event), option=pretty).decode()),
        ("CEF (`cef`)", "text", render_cef(event)),
    ]
    return "\n\n".join(f"**{title}**\n\n```{lang}\n{body}\n```" for title, lang, body in parts)


COMPLIANCE_FILE_END = 1784592000  # the sample file's end_time: 2026-07-21T00:00:00Z
COMPLIANCE_SAMPLE = ("AUTH_LOG", 2)  # a failed sign-in: the richest envelope


def compliance_records() -> list[ComplianceRecord]:
    """The packaged sample records (shipper/emulator/compliance/samples), one per line."""
    folder = resources.files("shipper.emulator.compliance").joinpath("samples")
    found = []
    for record_type in compliance.TYPES:
        text = folder.joinpath(f"{record_type}.jsonl").read_text("utf-8")
        for line in filter(str.strip, text.splitlines()):
            raw = orjson.loads(line)
            found.append(
                ComplianceRecord(
                    raw["event_id"], raw["type"], COMPLIANCE_FILE_END, raw, SAMPLE_ORGANIZATION
                )
            )
    return found


def compliance_types_markdown() -> str:
    """Per type: Elastic stream, Splunk sourcetype and the CIM data models it feeds."""
    lines = [
        "| type | ECS namespace (Elastic data stream) | Splunk sourcetype | CIM data models |",
        "|---|---|---|---|",
    ]
    for info in (*compliance.TYPES.values(), compliance.type_info("")):
        label = f"`{info.type}`" if info.known else "*any other type*"
        sourcetype = compliance.sourcetype(info.type)
        cim = ", ".join(info.cim) or "—"
        lines.append(
            f"| {label} | `openai_chatgpt_enterprise.{info.stream}` | `{sourcetype}` | {cim} |"
        )
    return "\n".join(lines)


def compliance_markdown() -> str:
    """One row per sample record: how its action reads in ECS and OCSF (rendered, not restated)."""
    lines = [
        "| type | action | outcome | ECS kind: category / type | OCSF class / activity |",
        "|---|---|---|---|---|",
    ]
    seen = set()
    for record in compliance_records():
        view = compliance_view(record)
        ecs = compliance.render_ecs(record)["event"]
        ocsf = compliance.render_ocsf(record)
        row = (
            f"| `{record.type}` | {view.action or '—'} | {view.outcome or '—'} "
            f"| {ecs['kind']}: {','.join(ecs.get('category', [])) or '—'} / "
            f"{','.join(ecs.get('type', [])) or '—'} "
            f"| {ocsf['class_uid']} {ocsf['class_name']} / {ocsf['activity_id']} "
            f"{ocsf['activity_name']} |"
        )
        if row not in seen:
            seen.add(row)
            lines.append(row)
    return "\n".join(lines)


def compliance_samples() -> str:
    """One compliance record in every format, as markdown."""
    record_type, index = COMPLIANCE_SAMPLE
    record = [r for r in compliance_records() if r.type == record_type][index]
    pretty = orjson.OPT_INDENT_2
    parts = [
        ("Record (`raw`)", "json", orjson.dumps(record.raw, option=pretty).decode()),
        ("Normalized (`normalized`)", "json", _pretty(compliance.render_normalized(record))),
        ("ECS (`ecs`)", "json", _pretty(compliance.render_ecs(record))),
        ("OCSF (`ocsf`)", "json", _pretty(compliance.render_ocsf(record))),
        ("CEF (`cef`)", "text", compliance.render_cef(record)),
    ]
    return "\n\n".join(f"**{title}**\n\n```{lang}\n{body}\n```" for title, lang, body in parts)


def _pretty(doc: object) -> str:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode()


COMPLIANCE_INTRO = """Records of the ChatGPT Enterprise Compliance Logs Platform have a mapping of their own
(`shipper/render/compliance/`), chosen per record `type` and, within a type, by its action. The
table below is rendered from the packaged sample records
(`shipper/emulator/compliance/samples/`), so it shows what the renderers do, not what they were
meant to do. [Formats](../formats.md#compliance-records) explains the rules."""


PAGE = Path("docs/reference/mappings.md")
PAGE_INTRO = """# SIEM mappings

<!-- generated by python -m docgen.mapping_reference from shipper/data/event_mapping.json: edit
the data, then regenerate; a test fails while this page is stale -->

Every event type has one row in `shipper/data/event_mapping.json`: action, outcome, target (and
where its id is in the payload), ECS category/type, OCSF class/activity and severity. Types the
API adds later follow the default rule in the last row. [Formats](../formats.md) says how each
rendering uses the row."""


def document() -> str:
    """The whole page: the audit-log table and sample, then the compliance-record ones."""
    return (
        f"{PAGE_INTRO}\n\n## The mapping table\n\n{mapping_markdown()}\n\n"
        f"## One event in every format\n\n{samples()}\n\n"
        f"## Compliance records\n\n{COMPLIANCE_INTRO}\n\n"
        f"### Types, sourcetypes and CIM data models\n\n{compliance_types_markdown()}\n\n"
        f"### Actions of the sample records\n\n{compliance_markdown()}\n\n"
        f"### One record in every format\n\n{compliance_samples()}\n"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--splunk-lookup"]:
        sys.stdout.write(splunk_lookup_csv())
    elif not args:
        sys.stdout.write(document())
    else:
        sys.stderr.write("usage: python -m docgen.mapping_reference [--splunk-lookup]\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
