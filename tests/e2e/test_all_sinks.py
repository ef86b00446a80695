"""The CLI with all nine sinks at once, one receiver down for the first run.

Every receiver is a real fake on loopback (rsyslogd for syslog; TLS with a throwaway CA for
Sentinel; a throwaway service-account key for SecOps). Each sink has a helper for its TOML and
its receiver a way to list the event ids it holds, so each sink is checked the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from shipper.emulator import Emulator, generate_events
from shipper.pipeline.cursor_store import CursorStore
from shipper.testing.receivers.datadog import FakeDatadog
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from shipper.testing.receivers.rsyslog import Rsyslog, rsyslogd_path
from shipper.testing.receivers.secops import FakeSecOps
from shipper.testing.receivers.sentinel import (
    CLIENT_ID,
    DCR_ID,
    TENANT,
    FakeSentinel,
    loopback_tls,
)
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from shipper.testing.receivers.sumologic import FakeSumo
from shipper.testing.receivers.webhook import FakeWebhook
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config

HEC_TOKEN = "e2e-hec-token-0123456789"
SENTINEL_SECRET = "e2e-sentinel-client-secret-0123456789"
DATADOG_KEY = "e2e-dd-api-key-0123456789"
Value = str | int | bool
# Two attempts, five seconds: the down sink gives up quickly, so the first run stays short.
FAST: dict[str, Value] = {"retry_max_attempts": 2, "retry_max_time": "5s"}


def sink_block(sink_type: str, name: str, settings: dict[str, Value]) -> str:
    """One `[[sinks]]` table (`json.dumps` of a str or int is valid TOML for these values)."""
    lines = ["[[sinks]]", f'type = "{sink_type}"', f'name = "{name}"']
    for key, value in settings.items():
        rendered = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n\n"


def secret_file(directory: Path, name: str, secret: str) -> str:
    path = directory / name
    path.write_text(secret + "\n", encoding="utf-8")
    return str(path)


@dataclass(frozen=True)
class Receivers:
    """The nine receivers, running; `dir` holds the file sink's output and the secret files."""

    dir: Path
    syslog: Rsyslog
    hook: FakeWebhook
    hec: FakeHec
    es: FakeElasticsearch
    sentinel: FakeSentinel
    sentinel_ca: Path
    secops: FakeSecOps
    datadog: FakeDatadog
    sumo: FakeSumo

    # -- each sink's TOML --------------------------------------------------------------------
    def file_toml(self) -> str:
        return sink_block("file", "file", {"path": f"{self.dir}/out/audit.jsonl"})

    def syslog_toml(self) -> str:
        return sink_block(
            "syslog", "syslog", {"host": "127.0.0.1", "port": self.syslog.tcp_port, **FAST}
        )

    def webhook_toml(self) -> str:
        return sink_block(
            "webhook", "webhook", {"url": self.hook.receiver.url, "format": "normalized", **FAST}
        )

    def splunk_toml(self) -> str:
        token = secret_file(self.dir, "hec-token", HEC_TOKEN)
        settings: dict[str, Value] = {"url": self.hec.receiver.url, "token_file": token}
        return sink_block("splunk_hec", "splunk", {**settings, "indexer_ack": True, **FAST})

    def elastic_toml(self) -> str:
        return sink_block("elasticsearch", "elastic", {"url": self.es.url, **FAST})

    def sentinel_toml(self) -> str:
        settings: dict[str, Value] = {
            "url": self.sentinel.endpoint,
            "dcr_immutable_id": DCR_ID,
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "client_secret_file": secret_file(self.dir, "sentinel-secret", SENTINEL_SECRET),
            "authority_host": self.sentinel.authority,
            "ca_file": str(self.sentinel_ca),
        }
        return sink_block("sentinel", "sentinel", {**settings, **FAST})

    def secops_toml(self) -> str:
        key = secret_file(self.dir, "secops-key.json", json.dumps(self.secops.new_account()))
        settings: dict[str, Value] = {
            "url": self.secops.url,
            "project": self.secops.project,
            "region": self.secops.location,
            "instance": self.secops.instance,
            "credentials_file": key,
        }
        return sink_block("secops", "secops", {**settings, **FAST})

    def datadog_toml(self) -> str:
        key = secret_file(self.dir, "dd-api-key", DATADOG_KEY)
        settings: dict[str, Value] = {"url": self.datadog.receiver.url, "api_key_file": key}
        return sink_block("datadog", "datadog", {**settings, **FAST})

    def sumo_toml(self) -> str:
        url = secret_file(self.dir, "sumo-url", self.sumo.url)
        return sink_block("sumologic", "sumo", {"url_file": url, **FAST})

    def toml(self) -> str:
        return (
            self.file_toml()
            + self.syslog_toml()
            + self.webhook_toml()
            + self.splunk_toml()
            + self.elastic_toml()
            + self.sentinel_toml()
            + self.secops_toml()
            + self.datadog_toml()
            + self.sumo_toml()
        )

    # -- what each holds -----------------------------------------------------------------------
    def file_ids(self) -> list[str]:
        lines = (self.dir / "out" / "audit.jsonl").read_bytes().splitlines()
        return [orjson.loads(line)["id"] for line in lines]

    def syslog_ids(self) -> list[str]:
        return [record.body()["id"] for record in self.syslog.sync()]

    def received(self) -> dict[str, Counter[str]]:
        """Sink name -> how many times each event id reached its receiver."""
        return {
            "file": Counter(self.file_ids()),
            "syslog": Counter(self.syslog_ids()),
            "webhook": Counter(self.hook.ids()),
            "splunk": Counter(self.hec.event_ids()),
            "elastic": Counter(self.es.docs().keys()),
            "sentinel": Counter(self.sentinel.record_ids()),
            "secops": Counter(self.secops.event_ids()),
            "datadog": Counter(self.datadog.ids()),
            "sumo": Counter(self.sumo.ids()),
        }

    def down(self, name: str) -> AbstractContextManager[None]:
        """That sink's receiver refusing connections: Elasticsearch, or Sentinel's ingestion endpoint."""
        return {"elastic": self.es.down, "sentinel": self.sentinel.down}[name]()


@contextmanager
def running_receivers(directory: Path) -> Iterator[Receivers]:
    """Start the nine receivers on loopback; stop them all on the way out."""
    server_context, ca_file = loopback_tls(directory)
    hec, hook = FakeHec({HEC_TOKEN: Token(ack=True)}), FakeWebhook()
    datadog, sumo = FakeDatadog({DATADOG_KEY}), FakeSumo()
    with ExitStack() as stack:
        for receiver in (hec.receiver, hook.receiver, datadog.receiver, sumo.receiver):
            stack.enter_context(receiver)
        yield Receivers(
            dir=directory,
            syslog=stack.enter_context(Rsyslog(directory / "rsyslog")),
            hook=hook,
            hec=hec,
            es=stack.enter_context(FakeElasticsearch()),
            sentinel=stack.enter_context(
                FakeSentinel(server_context, client_secret=SENTINEL_SECRET)
            ),
            sentinel_ca=ca_file,
            secops=stack.enter_context(FakeSecOps()),
            datadog=datadog,
            sumo=sumo,
        )


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, KEY_ENV: KEY},
    )


@pytest.mark.parametrize("down", ["elastic", "sentinel"])
def test_one_receiver_down_the_others_advance_and_it_catches_up(tmp_path: Path, down: str) -> None:
    """With one receiver down, the other eight get everything (exit 5); once it is back, it catches up and nothing is lost or doubled."""
    rsyslogd_path()  # skips (or fails under SHIPPER_REQUIRE_RSYSLOG=1) without rsyslogd
    events = generate_events(400, start=T0 - 86400, end=T0, seed=11)
    with Emulator(api_key=KEY, events=events) as emu, running_receivers(tmp_path) as rx:
        config = write_config(tmp_path, config_text(emu.base_url, tmp_path, sinks=rx.toml()))
        with rx.down(down):
            first = run_once(config)
        assert first.returncode == 5, first.stderr[-3000:]
        times = {e["id"]: e["effective_at"] for e in emu.events()}
        truth = set(times)
        got = rx.received()
        assert len(got) == 9
        for name, counts in got.items():
            if name != down:
                assert set(counts) == truth, name
                assert max(counts.values()) == 1, f"{name} got duplicates"
        # The down sink received nothing, so its cursor claims nothing: not one event behind it
        # (a cursor promises everything before high_water - lookback) and no id in `seen`.
        assert not got[down]
        cursor = CursorStore(tmp_path / "state", "default").load(down)
        assert cursor is None or (cursor.high_water <= min(times.values()) and not cursor.seen)

        late = {e["id"] for e in emu.add_late_events(10, max_age=120)}
        second = run_once(config)
        assert second.returncode == 0, second.stderr[-3000:]
        truth |= late
        got = rx.received()
    # Exactly once for all nine, though only Elasticsearch (create by _id) would refuse a repeat:
    # no batch failed part-way (the down sink sent nothing at all), so every cursor was exact and
    # the second run re-sent nothing; the late events sit inside lookback, found by `seen`.
    for name, counts in got.items():
        assert set(counts) == truth, name
        assert max(counts.values()) == 1, f"{name} got duplicates"
