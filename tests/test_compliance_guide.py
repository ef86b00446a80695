"""docs/compliance-siem.md tells the truth: each TOML snippet is a configuration the loader
accepts, each SIEM sink in it receives sign-ins and admin actions and none of the content in the
packaged samples, the archive receives all of it, and what the page says lands where is what the
sinks' settings do."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.config.settings import Config, load_config
from shipper.model.event import ComplianceRecord
from shipper.pipeline.privacy import SinkView, sink_view
from shipper.pipeline.sink import SinkSettings
from shipper.render import document_renderer, occurred_ms, renderer
from shipper.render.compliance import sourcetype
from shipper.render.compliance.record import dig, view_of
from sinks.datadog.protocol import ItemMeta, item
from sinks.elasticsearch.bulk import document
from sinks.secops.protocol import entry_times
from sinks.sentinel.records import generic
from sinks.splunk_hec.protocol import Envelope, envelope
from sinks.syslog.format import Header, pri_of
from tests.render import compliance_samples as cs
from tests.render.cef_parser import parse

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "compliance-siem.md"
VARIANTS = ROOT / "tests" / "data" / "compliance-variants.jsonl"
SOURCE = "acme-chatgpt"
# Where the records carry what people wrote or read (EVENT-TYPES.md, "content-bearing fields"),
# listed here apart from the page's drop list so that a path missing there is caught.
CONTENT_PATHS = [
    ("message", "content"),
    ("conversation", "title"),
    ("input",),
    ("output",),
    ("event_details", "prompt_text"),
    ("event_details", "response_text"),
    ("event_details", "tool_input"),
    ("event_details", "arguments"),
    ("event_details", "result_preview"),
    ("event_details", "text"),
    ("event_details", "agent_fields", "prompt"),
    ("event_details", "invoker", "user_message_text"),
    ("event_details", "trigger_fields", "instructions"),
    ("action_data", "system_instruction"),
]
PLANTED = "VARIANTCONTENT"  # written into every content field of tests/data/compliance-variants


def snippets() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", PAGE.read_text(), re.S)


def config_of(snippet: str, tmp_path: Path) -> Config:
    """The page's first snippet (sources and archive) with `snippet` added, as the loader reads it."""
    base = snippets()[0]
    path = tmp_path / "shipper.toml"
    path.write_text(base if snippet == base else f"{base}\n{snippet}")
    return load_config(path)


def records() -> list[ComplianceRecord]:
    raws = cs.records()
    raws += [orjson.loads(line) for line in VARIANTS.read_text().splitlines() if line.strip()]
    return [cs.record(raw) for raw in raws]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def content_markers() -> set[str]:
    """Every piece of text (8 characters or more) the records hold in a content field and
    nowhere else (an app call's `input` also carries the caller's location, which sign-ins
    carry too)."""
    found: set[str] = set()
    elsewhere: set[str] = set()
    for record in records():
        raw = json.loads(json.dumps(record.raw))
        for path in CONTENT_PATHS:
            found |= {s for s in _strings(dig(raw, *path)) if len(s) >= 8}
            parent = dig(raw, *path[:-1]) if len(path) > 1 else raw
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
        elsewhere |= set(_strings(raw))
    return found - elsewhere


def sink_format(settings: SinkSettings) -> str:
    """The format a sink renders: syslog's is its body; SecOps sends the record as it is."""
    if settings.type == "syslog":
        body, body_format = getattr(settings, "body"), getattr(settings, "body_format")  # noqa: B009
        return "cef" if body == "cef" else str(body_format)
    return settings.format


def readable(rendered: bytes, fmt: str) -> str:
    """What a rendered document says, unescaped: every string of a JSON document, or every
    header field and extension value of a CEF line (escapes would hide a leaked text)."""
    if fmt == "cef":
        cef = parse(rendered.decode())
        return "\n".join([*cef.header.values(), *cef.extensions.values()])
    return "\n".join(_strings(orjson.loads(rendered)))


def received(settings: SinkSettings, *, with_event_types: bool = True) -> list[tuple[str, str]]:
    """(type, what it reads) of every sample and variant the sink receives, edited by its keys."""
    view = sink_view(settings.event_types if with_event_types else [], settings.privacy, None)
    fmt = sink_format(settings)
    render = renderer(fmt)
    out: list[tuple[str, str]] = []
    for record in records():
        if isinstance(view, SinkView) and not view.takes(record):
            continue
        edited = view.apply(record) if view is not None else record
        out.append((record.type, readable(render(edited), fmt)))
    return out


def siem_snippets() -> list[str]:
    return snippets()[1:]


def test_the_page_has_a_snippet_per_siem() -> None:
    """The base snippet, then one for each SIEM the page covers."""
    kinds = [sorted({s.type for s in load_sinks(snippet)}) for snippet in siem_snippets()]
    assert kinds == [
        ["splunk_hec"],
        ["elasticsearch"],
        ["sentinel"],
        ["secops"],
        ["datadog"],
        ["sumologic"],
        ["syslog"],
    ]


def load_sinks(snippet: str) -> list[SinkSettings]:
    """The sinks a snippet adds, validated with the base (a temporary file per call)."""
    with tempfile.TemporaryDirectory() as folder:
        config = config_of(snippet, Path(folder))
    names = set(re.findall(r'^name = "([^"]+)"', snippet, re.M))
    return [s for s in config.sinks if s.name in names]


@pytest.mark.parametrize(
    "snippet", snippets(), ids=lambda s: re.findall(r'name = "([^"]+)"', s)[-1]
)
def test_every_snippet_loads_with_the_base(snippet: str, tmp_path: Path) -> None:
    """Each TOML snippet, added to the page's first one, is a configuration load_config accepts."""
    config = config_of(snippet, tmp_path)
    assert {s.name for s in config.configured_sources} == {"acme-audit", SOURCE}


def test_the_archive_takes_every_record_with_its_content(tmp_path: Path) -> None:
    """The base's archive gets only the compliance source, every type, and all the content."""
    config = config_of(snippets()[0], tmp_path)
    (archive,) = config.sinks
    assert archive.sources == [SOURCE] and not archive.event_types and archive.privacy is None
    text = "\n".join(doc for _, doc in received(archive))
    assert content_markers() and all(marker in text for marker in content_markers())
    assert len(received(archive)) == len(records())


@pytest.mark.parametrize(
    "snippet", siem_snippets(), ids=lambda s: re.findall(r'type = "(\w+)"', s)[0]
)
def test_siem_sinks_get_sign_ins_and_admin_actions_and_no_content(snippet: str) -> None:
    """Each SIEM snippet's sinks take only the compliance source; together they receive sign-ins
    and admin actions; none receives any content of the samples, even with its `event_types`
    left out (the drop list alone keeps content out of every type)."""
    sinks = load_sinks(snippet)
    types: set[str] = set()
    for settings in sinks:
        assert settings.sources == [SOURCE], settings.name
        for with_types in (True, False):
            for record_type, text in received(settings, with_event_types=with_types):
                leaked = [m for m in content_markers() if m in text]
                assert leaked == [] and PLANTED not in text, (settings.name, record_type, leaked)
                if with_types:
                    types.add(record_type)
    assert {"AUTH_LOG", "AUDIT_LOG"} <= types
    assert not types & {"CONVERSATION_MESSAGE", "APP_LOG", "CODEX_LOG", "CUSTOM_AGENTS_LOG"}


def _one(kind: str) -> list[SinkSettings]:
    return [s for snippet in siem_snippets() for s in load_sinks(snippet) if s.type == kind]


def test_the_splunk_sink_sends_each_type_under_its_stanzas_sourcetype() -> None:
    """One HEC sink takes the security types and leaves `sourcetype` and `source` unset, so each
    record it receives goes under its type's sourcetype, which props.conf has a stanza for, and
    the source the page names."""
    props = (ROOT / "deploy" / "splunk" / "props.conf").read_text()
    page = " ".join(PAGE.read_text().split())
    (settings,) = _one("splunk_hec")
    assert getattr(settings, "sourcetype") is None and getattr(settings, "source") is None  # noqa: B009
    assert settings.format == "normalized"
    meta = Envelope(None, None, None, None, True)
    view = sink_view(settings.event_types, settings.privacy, None)
    sent: set[str] = set()
    for record in records():
        if isinstance(view, SinkView) and not view.takes(record):
            continue
        obj = orjson.loads(envelope(record, {}, meta))
        assert obj["sourcetype"] == sourcetype(record.type), record.type
        assert f"\n[{obj['sourcetype']}]\n" in props
        assert f"source `{obj['source']}`" in page
        sent.add(obj["sourcetype"])
    assert {"openai:compliance:auth_log", "openai:compliance:audit_log"} <= sent


def test_elastic_sink_writes_where_the_compliance_template_applies() -> None:
    """The Elasticsearch sink's index matches the compliance index template's pattern only."""
    (settings,) = _one("elasticsearch")
    index = getattr(settings, "index")  # noqa: B009
    elastic = ROOT / "deploy" / "elastic"
    compliance = json.loads((elastic / "compliance_index_template.json").read_text())
    audit = json.loads((elastic / "index_template.json").read_text())
    assert any(fnmatch.fnmatch(index, p) for p in compliance["index_patterns"])
    assert not any(fnmatch.fnmatch(index, p) for p in audit["index_patterns"])
    assert settings.format == "ecs"


def test_sentinel_secops_and_syslog_settings_are_the_ones_the_page_explains() -> None:
    """Sentinel uses the generic profile, SecOps names a compliance log type, syslog sends CEF
    with the notice severity the page states for every record."""
    (sentinel,) = _one("sentinel")
    assert getattr(sentinel, "profile") == "generic"  # noqa: B009
    (secops,) = _one("secops")
    assert getattr(secops, "compliance_log_type") == "CHATGPT_COMPLIANCE"  # noqa: B009
    assert secops.format == "raw"
    (syslog,) = _one("syslog")
    assert sink_format(syslog) == "cef"
    assert {pri_of(16, t) % 8 for t in ("AUTH_LOG", "AUDIT_LOG")} == {5}


def test_the_page_is_in_the_site_navigation() -> None:
    """mkdocs.yml lists the page, so the strict site build checks its links."""
    assert "compliance-siem.md" in (ROOT / "mkdocs.yml").read_text()


def test_the_syslog_searches_match_the_cef_of_their_records() -> None:
    """The page's QRadar and grep patterns find the CEF lines of a failed sign-in, a blocked
    admin action and a role change, and not the other records."""
    page = PAGE.read_text()
    patterns = re.findall(r"ILIKE '%([^%']+)%'", page)
    patterns += re.findall(r"grep -F '([^']+)'", page)
    lines = {r.id: renderer("cef")(r).decode() for r in records()}
    failed = cs.sample("AUTH_LOG", action="login_failed").id
    role = cs.sample("AUDIT_LOG", action="USER_ROLE_UPDATED").id
    hits = {p: {i for i, line in lines.items() if p in line} for p in patterns}
    assert hits["|ChatGPT Compliance|1.0|AUTH_LOG:login_failed|"] == {failed}
    assert hits["|ChatGPT Compliance|1.0|AUDIT_LOG:USER_ROLE_UPDATED|"] == {role}
    blocked = hits["|ChatGPT Compliance|1.0|AUDIT_LOG:"] & hits["outcome=failure"]
    assert cs.sample("AUDIT_LOG", action="INVITE_SEND").id in blocked
    assert all(view_of(cs.record(r.raw)).outcome == "failure" for r in records() if r.id in blocked)


def test_sinks_stamp_the_records_own_time_as_the_documents_do() -> None:
    """The page's time paragraph: HEC `time`, Sentinel `TimeGenerated`, SecOps `logEntryTime`,
    Datadog `timestamp`, the syslog header and Elasticsearch's added `@timestamp` are the
    record's own time, as normalized `timestamp`, ECS `@timestamp` and CEF `rt` are, not the
    end time of the log file (`effective_at`)."""
    record = cs.sample("AUTH_LOG", action="login_failed")
    own = dt.datetime.fromisoformat(record.raw["timestamp"])
    own_ms = int(own.timestamp() * 1000)
    file_end = dt.datetime.fromtimestamp(record.effective_at, dt.UTC)
    assert own != file_end
    meta = Envelope(None, None, None, None, True)
    assert orjson.loads(envelope(record, {}, meta))["time"] == own_ms / 1000
    stamped = generic(document_renderer("normalized"))(record)["TimeGenerated"]
    assert dt.datetime.fromisoformat(stamped) == own
    entry, _ = entry_times(record, file_end + dt.timedelta(hours=1))
    assert dt.datetime.fromisoformat(entry) == own
    item_meta = ItemMeta("openai", "chatgpt-compliance", None, ())
    assert (
        orjson.loads(item(record, b"{}", item_meta, time_ms=own_ms, late=False))["timestamp"]
        == occurred_ms(record)
        == own_ms
    )
    header = Header.create("rfc5424", facility=16, hostname="h", app_name="a", procid="1")
    stamp = header.message(record, b"{}").split(b" ")[1].decode()
    assert dt.datetime.fromisoformat(stamp) == own
    assert (
        dt.datetime.fromisoformat(document(record, document_renderer("raw"))["@timestamp"]) == own
    )
    assert document_renderer("normalized")(record)["timestamp"] == "2026-07-20T08:10:02Z"
    assert document_renderer("ecs")(record)["@timestamp"] == "2026-07-20T08:10:02Z"
    assert parse(renderer("cef")(record).decode()).extensions["rt"] == str(own_ms)
