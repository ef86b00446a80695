"""Per-sink privacy against every sink type and format, through a whole run with real receivers.

Each run has two sinks fed the same events: `siem`, of the type under test, with `privacy` rules,
and `archive`, a file sink without them. A marker string sits only in the fields `siem` drops,
and an e-mail address only in the field it hashes: neither may appear in anything `siem`'s
receiver got, nor in its dead-letter file, while `archive` gets both (the events the two sinks
share are not changed by one sink's rules).
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.cli.main import main
from shipper.cli.status import collect
from shipper.config.settings import load_config
from shipper.emulator import Emulator
from shipper.model.event import AuditEvent, ComplianceRecord
from shipper.pipeline import deadletter
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.delivery import SinkWorker, Window
from shipper.pipeline.privacy import PrivacySettings, sink_view
from shipper.pipeline.sink import Rejection, SinkContext
from shipper.runtime import app
from shipper.source import quarantine
from shipper.source.audit_log.parse import Defect
from shipper.source.quarantine import Listed
from shipper.testing.receivers.base import Receiver
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from shipper.testing.receivers.rsyslog import Rsyslog, rsyslogd_path
from shipper.testing.receivers.secops import FakeSecOps
from shipper.testing.receivers.sentinel import (
    CLIENT_ID,
    DCR_ID,
    OPENAI_STREAM,
    TENANT,
    FakeSentinel,
    loopback_tls,
)
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from shipper.testing.receivers.webhook import FakeWebhook
from sinks.file.sink import FileSettings
from sinks.file.sink import plugin as file_plugin
from tests.conftest import KEY, config_text, write_config
from tests.render.compliance_samples import SAMPLES

MARKER = "PRIVMARK5b1e0c7a"
EMAIL = "dana.PRIVMAIL93d2@example.com"
HASH_KEY = "privacy-test-hash-key-0f1e2d3c4b5a"
HEC_TOKEN = "privacy-hec-token-0123456789"
SENTINEL_SECRET = "privacy-client-secret-0123456789~SECRET"
GENERIC_STREAM = "Custom-OpenAIShipperEvents"
# Recent whole seconds: RFC 3164 headers carry no year, so rsyslog assumes the current one.
NOW = int(time.time()) - 3600
REFUSED = "audit_log-privacy-0001"  # a receiver that can refuse one event refuses this one

PRIVACY = (
    'privacy = { drop = ["*.data", "*.error_message", "actor.session.user_agent"], '
    'hash = ["actor.session.user.email"], hash_key = { file = "%s" } }\n'
)


def marked_events() -> list[dict[str, Any]]:
    """Sign-in failures and key creations; the marker only in fields the rules drop."""
    events = []
    for index in range(6):
        kind = ("api_key.created", "login.failed")[index % 2]
        payload: dict[str, Any] = (
            {"id": f"key_{index}", "data": {"scopes": [f"api.{MARKER}.read"]}}
            if kind == "api_key.created"
            else {"error_code": "invalid_password", "error_message": f"denied {MARKER}"}
        )
        events.append(
            {
                "id": f"audit_log-privacy-{index:04d}",
                "object": "organization.audit_log",
                "type": kind,
                "effective_at": NOW - 600 + index * 60,
                "actor": {
                    "type": "session",
                    "session": {
                        "user": {"id": "user-abc", "email": EMAIL},
                        "ip_address": "203.0.113.7",
                        "user_agent": f"Mozilla {MARKER}",
                    },
                },
                "project": {"id": "proj_1", "name": "Project One"},
                kind: payload,
            }
        )
    return events


def http_bytes(receiver: Receiver) -> bytes:
    """Everything an HTTP receiver was sent: request lines, headers and decoded bodies, plus
    every base64 string in a JSON body decoded (SecOps carries each event so)."""
    parts = []
    for r in receiver.requests:
        parts.append(f"{r.method} {r.path} {r.query} {r.headers}".encode())
        parts.append(r.body)
        for line in r.body.splitlines():
            with contextlib.suppress(ValueError):
                parts.extend(unbase64(orjson.loads(line)))
    return b"\n".join(parts)


def unbase64(value: Any, depth: int = 0) -> Iterator[bytes]:
    """Every string inside `value` that is base64, decoded (a JSON body is a few levels deep)."""
    if isinstance(value, dict) and depth < 20:
        for item in value.values():
            yield from unbase64(item, depth + 1)
    elif isinstance(value, list) and depth < 20:
        for item in value:
            yield from unbase64(item, depth + 1)
    elif isinstance(value, str) and len(value) % 4 == 0:
        with contextlib.suppress(ValueError):
            yield base64.b64decode(value, validate=True)


@dataclass
class Target:
    """A receiver of one sink type: the `[[sinks]]` keys that reach it, and what it got."""

    keys: str
    received: Callable[[], bytes]
    refuses: bool  # whether it refused REFUSED (the dead-letter file then holds it)


@contextmanager
def target(kind: str, shape: str, tmp_path: Path) -> Iterator[Target]:
    """A running receiver for a `kind` sink sending documents of `shape`."""
    fast = 'retry_max_attempts = 2\nretry_max_time = "5s"\n'
    if kind == "file":
        out = tmp_path / "siem-out"
        yield Target(
            f'path = "{out}/siem.jsonl"\n',
            lambda: b"".join(p.read_bytes() for p in sorted(out.iterdir())),
            refuses=False,
        )
    elif kind == "syslog":
        rsyslogd_path()  # skips (or fails under SHIPPER_REQUIRE_RSYSLOG=1) without rsyslogd
        with Rsyslog(tmp_path / "rsyslog") as server:

            def synced() -> bytes:
                server.sync()
                return server.output.read_bytes()

            keys = f'host = "127.0.0.1"\nport = {server.tcp_port}\ntransport = "tcp"\n{fast}'
            yield Target(keys, synced, refuses=False)
    elif kind == "webhook":
        hook = FakeWebhook()
        hook.reject_ids.add(REFUSED)
        with hook.receiver:
            # The fake webhook finds an event's id at the top of the document only.
            by_id = "raw" in shape or "normalized" in shape
            keys = f'url = "{hook.receiver.url}/in"\n{fast}'
            yield Target(keys, lambda: http_bytes(hook.receiver), refuses=by_id)
    elif kind == "splunk_hec":
        hec = FakeHec({HEC_TOKEN: Token(ack=True)})
        hec.reject_ids.add(REFUSED)
        token = tmp_path / "hec-token"
        token.write_text(HEC_TOKEN)
        with hec.receiver:
            keys = f'url = "{hec.receiver.url}"\ntoken_file = "{token}"\nindexer_ack = true\n{fast}'
            yield Target(keys, lambda: http_bytes(hec.receiver), refuses=True)
    elif kind == "elasticsearch":
        with FakeElasticsearch() as es:
            es.reject(REFUSED)
            keys = f'url = "{es.url}"\n{fast}'
            yield Target(keys, lambda: http_bytes(es.receiver), refuses=True)
    elif kind == "secops":
        with FakeSecOps() as secops:
            secops.reject(REFUSED)
            account = tmp_path / "secops-key.json"
            account.write_bytes(orjson.dumps(secops.new_account()))
            keys = (
                f'url = "{secops.url}"\nproject = "{secops.project}"\n'
                f'region = "{secops.location}"\ninstance = "{secops.instance}"\n'
                f'credentials_file = "{account}"\n{fast}'
            )
            yield Target(keys, lambda: http_bytes(secops.receiver), refuses=True)
    else:
        context, ca_file = loopback_tls(tmp_path)
        generic = "generic" in shape
        stream = GENERIC_STREAM if generic else OPENAI_STREAM
        with FakeSentinel(context, client_secret=SENTINEL_SECRET, stream=stream) as sentinel:
            sentinel.reject_ids.add(REFUSED)
            secret = tmp_path / "sentinel-secret"
            secret.write_text(SENTINEL_SECRET)
            keys = (
                f'url = "{sentinel.endpoint}"\ndcr_immutable_id = "{DCR_ID}"\n'
                f'tenant_id = "{TENANT}"\nclient_id = "{CLIENT_ID}"\n'
                f'client_secret_file = "{secret}"\nauthority_host = "{sentinel.authority}"\n'
                f'ca_file = "{ca_file}"\n{fast}'
            )

            def both() -> bytes:
                return http_bytes(sentinel.entra) + http_bytes(sentinel.ingestion)

            # The fake refuses by a top-level id, which the ECS and OCSF shapes nest.
            by_id = not generic or "raw" in shape or "normalized" in shape
            yield Target(keys, both, refuses=by_id)


# Every sink type with every document shape it can send.
CASES = [
    *(("file", f'format = "{f}"\n') for f in ("raw", "normalized", "ecs", "ocsf", "cef")),
    *(("syslog", f'body_format = "{f}"\n') for f in ("raw", "normalized", "ecs", "ocsf")),
    ("syslog", 'body = "cef"\n'),
    ("syslog", 'format = "rfc3164"\nbody_format = "raw"\n'),
    *(("webhook", f'format = "{f}"\n') for f in ("raw", "normalized", "ecs", "ocsf")),
    *(("splunk_hec", f'format = "{f}"\n') for f in ("raw", "normalized")),
    *(("elasticsearch", f'format = "{f}"\n') for f in ("ecs", "normalized", "raw", "ocsf")),
    ("secops", 'format = "raw"\n'),
    ("sentinel", 'profile = "openai_solution"\n'),
    *(
        ("sentinel", f'profile = "generic"\nformat = "{f}"\n')
        for f in ("normalized", "raw", "ecs", "ocsf")
    ),
]


@pytest.mark.parametrize(("kind", "shape"), CASES, ids=[f"{k}-{s.strip()}" for k, s in CASES])
def test_dropped_content_appears_nowhere_in_what_the_sink_sent(
    kind: str, shape: str, tmp_path: Path, admin_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """No dropped or hashed value reaches the receiver or the dead-letter file; the other sink gets them."""
    key_file = tmp_path / "hash-key"
    key_file.write_text(HASH_KEY + "\n")
    events = marked_events()
    with Emulator(api_key=KEY, events=events) as emu, target(kind, shape, tmp_path) as got:
        sinks = (
            f'[[sinks]]\ntype = "{kind}"\nname = "siem"\n{shape}{got.keys}'
            + PRIVACY % key_file
            + f'\n[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/archive.jsonl"\n'
        )
        text = config_text(emu.base_url, tmp_path, start_at=NOW - 86400, sinks=sinks)
        config = load_config(write_config(tmp_path, text))
        outcome = app.run(config, once=True)
        assert outcome.failures == []
        received = got.received()
    logs = capsys.readouterr()
    status = orjson.dumps(collect(config)).decode()
    for text in (logs.out, logs.err, status):  # the hash key is a secret like any other
        assert HASH_KEY not in text and MARKER not in text

    for event in events:  # the events did arrive, and only the rules' fields are gone
        assert event["id"].encode() in received
    for secret in (MARKER, EMAIL, HASH_KEY):
        assert secret.encode() not in received, f"{secret} reached the {kind} receiver"
    dead = tmp_path / "state" / "dead-letter" / "siem.jsonl"
    if got.refuses:
        assert REFUSED.encode() in dead.read_bytes()
    if dead.exists():
        for secret in (MARKER, EMAIL, HASH_KEY):
            assert secret.encode() not in dead.read_bytes()
    archive = (tmp_path / "archive.jsonl").read_bytes()
    assert MARKER.encode() in archive
    assert EMAIL.encode() in archive


def plain_event(event_id: str, kind: str, at: int) -> dict[str, Any]:
    return {"id": event_id, "object": "organization.audit_log", "type": kind, "effective_at": at}


def test_event_types_skip_the_rest_and_a_refused_event_is_still_carried(
    tmp_path: Path, admin_key: str
) -> None:
    """Only the listed types are sent; a lone refused one among many skipped is blamed once a later window goes through."""
    lone = plain_event("audit_log-lone", "login.failed", NOW - 4 * 3600)
    crowd = [
        plain_event(f"audit_log-c{i:03d}", "login.succeeded", NOW - 4 * 3600) for i in range(150)
    ]
    later = [plain_event(f"audit_log-l{i:03d}", "login.failed", NOW - 3600 + i) for i in range(5)]
    hook = FakeWebhook()
    hook.reject_ids = {lone["id"]}
    with Emulator(api_key=KEY, events=[lone, *crowd, *later]) as emu, hook.receiver:
        sinks = (
            f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.receiver.url}"\n'
            'retry_max_attempts = 1\nretry_max_time = "5s"\nevent_types = ["login.failed"]\n'
        )
        text = config_text(emu.base_url, tmp_path, start_at=NOW - 4 * 3600 - 300, sinks=sinks)
        outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
    assert outcome.failures == []
    assert sorted(hook.ids()) == sorted(e["id"] for e in later)
    dead = (tmp_path / "state" / "dead-letter" / "hook.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line)["event_id"] for line in dead] == [lone["id"]]


def replay_config(tmp_path: Path, privacy: str) -> Path:
    """Two file sinks, `siem` with `privacy` and `archive` without; nothing is ever fetched."""
    sinks = (
        f'[[sinks]]\ntype = "file"\nname = "siem"\npath = "{tmp_path}/siem.jsonl"\n{privacy}\n'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/archive.jsonl"\n'
    )
    return write_config(tmp_path, config_text("http://127.0.0.1:9/v1", tmp_path, sinks=sinks))


def test_dead_letters_from_before_the_rules_are_replayed_under_them(
    tmp_path: Path, admin_key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`dlq replay` applies the sink's rules: old unedited dead letters never reach it unedited."""
    types = 'event_types = ["api_key.created", "login.failed"]\n'
    config = replay_config(tmp_path, types + PRIVACY.replace(', hash_key = { file = "%s" }', ""))
    events = [AuditEvent.from_api(e) for e in marked_events()]
    other = AuditEvent.from_api(
        plain_event("audit_log-other", "login.succeeded", NOW) | {"x": MARKER}
    )
    dead = tmp_path / "state" / "dead-letter" / "siem.jsonl"
    deadletter.append(dead, "siem", [Rejection(e, "refused") for e in [*events, other]], NOW)
    assert main(["dlq", "replay", "--config", str(config), "--sink", "siem"]) == 0
    assert "replayed 7 of 7" in capsys.readouterr().out
    sent = (tmp_path / "siem.jsonl").read_bytes()
    assert [orjson.loads(line)["id"] for line in sent.splitlines()] == [e.id for e in events]
    assert MARKER.encode() not in sent and EMAIL.encode() not in sent
    assert dead.read_bytes() == b""


def test_quarantined_entries_are_replayed_under_each_sinks_rules(
    tmp_path: Path, admin_key: str
) -> None:
    """`quarantine replay` edits what it sends to a sink with rules and leaves the others whole."""
    key_file = tmp_path / "hash-key"
    key_file.write_text(HASH_KEY)
    config = replay_config(tmp_path, PRIVACY % key_file)
    path = quarantine.default_path(tmp_path / "state", "default")
    listed = Listed(NOW - 3600, NOW, False, "req_old")
    raw = orjson.dumps(marked_events()[0])
    path.parent.mkdir(parents=True)
    path.write_bytes(quarantine.record("default", Defect(raw, "old", "bad_time"), listed, NOW))
    assert main(["quarantine", "replay", "--config", str(config)]) == 0
    sent = (tmp_path / "siem.jsonl").read_bytes()
    assert b"audit_log-privacy-0000" in sent
    assert MARKER.encode() not in sent and EMAIL.encode() not in sent
    assert MARKER.encode() in (tmp_path / "archive.jsonl").read_bytes()


# Content in the samples, and the fields that carry it (docs/privacy.md lists them).
CONTENT = ("login outage", "Found 7 issues", "In Progress", "upload handler")
CONTENT_PATHS = ["message.content", "input", "output", "event_details.prompt_text"]


def compliance_records() -> list[AuditEvent]:
    """Every sample record of the Compliance Logs Platform, as the source would hold it."""
    records: list[AuditEvent] = []
    for sample in sorted(SAMPLES.glob("*.jsonl")):
        for line in sample.read_bytes().splitlines():
            obj = orjson.loads(line)
            at = NOW - 600 + len(records)
            records.append(ComplianceRecord(obj["event_id"], obj["type"], at, json=line))
    return sorted(records, key=lambda e: e.sort_key)


@pytest.mark.parametrize("shape", ["raw", "normalized", "ecs", "ocsf", "cef"])
def test_compliance_content_appears_nowhere_in_any_format(tmp_path: Path, shape: str) -> None:
    """Message text, tool input and output and prompts of compliance records, once dropped, are in no format."""
    records = compliance_records()
    assert all(any(c.encode() in r.json for r in records) for c in CONTENT)
    privacy = PrivacySettings(drop=CONTENT_PATHS)
    window = Window(NOW - 600, NOW, records)
    workers = []
    for name, view in (("siem", sink_view([], privacy, None)), ("archive", None)):
        settings = FileSettings(type="file", name=name, path=str(tmp_path / name), format=shape)
        sink = file_plugin.create(settings, SinkContext(state_dir=tmp_path))
        sink.open()
        worker = SinkWorker(
            name=name,
            sink=sink,
            cursor=Cursor(high_water=NOW - 600),
            store=CursorStore(tmp_path / "state", "compliance"),
            dead_letter_path=tmp_path / f"{name}-dead.jsonl",
            lookback=600,
            view=view,
        )
        worker.start()
        worker.offer(window, stall_timeout=None)
        workers.append((worker, sink))
    for worker, sink in workers:
        report = worker.finish()
        sink.close()
        assert (report.state, report.delivered) == ("ok", len(records)), report.error
    siem, archive = (tmp_path / "siem").read_bytes(), (tmp_path / "archive").read_bytes()
    for record in records:
        assert record.id.encode() in siem
    for content in CONTENT:
        assert content.encode() not in siem, content
    if shape != "cef":  # the CEF mapping of compliance records carries no content at all
        assert any(content.encode() in archive for content in CONTENT)
