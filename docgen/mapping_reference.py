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
from pathlib import Path

import orjson

from shipper.model.event import AuditEvent
from shipper.render.cef import render_cef
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


PAGE = Path("docs/reference/mappings.md")
PAGE_INTRO = """# SIEM mappings

<!-- generated by python -m docgen.mapping_reference from shipper/data/event_mapping.json: edit
the data, then regenerate; a test fails while this page is stale -->

Every event type has one row in `shipper/data/event_mapping.json`: action, outcome, target (and
where its id is in the payload), ECS category/type, OCSF class/activity and severity. Types the
API adds later follow the default rule in the last row. [Formats](../formats.md) says how each
rendering uses the row."""


def document() -> str:
    """The whole page: the table, then the same sample event in every format."""
    return (
        f"{PAGE_INTRO}\n\n## The mapping table\n\n{mapping_markdown()}\n\n"
        f"## One event in every format\n\n{samples()}\n"
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
