"""The CLI with all five sinks at once, one receiver down for the first run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson

from shipper.emulator import Emulator, generate_events
from shipper.pipeline.cursor_store import CursorStore
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from shipper.testing.receivers.rsyslog import Rsyslog, rsyslogd_path
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from shipper.testing.receivers.webhook import FakeWebhook
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config

HEC_TOKEN = "e2e-hec-token-0123456789"


def sinks_toml(
    tmp_path: Path, hec: FakeHec, hook: FakeWebhook, es: FakeElasticsearch, syslog: Rsyslog
) -> str:
    (tmp_path / "hec-token").write_text(HEC_TOKEN)
    fast = 'retry_max_attempts = 2\nretry_max_time = "5s"\n'
    return (
        f'[[sinks]]\ntype = "file"\nname = "file"\npath = "{tmp_path}/out/audit.jsonl"\n\n'
        f'[[sinks]]\ntype = "syslog"\nname = "syslog"\nhost = "127.0.0.1"\nport = {syslog.tcp_port}\n{fast}\n'
        f'[[sinks]]\ntype = "webhook"\nname = "webhook"\nurl = "{hook.receiver.url}"\nformat = "normalized"\n{fast}\n'
        f'[[sinks]]\ntype = "splunk_hec"\nname = "splunk"\nurl = "{hec.receiver.url}"\n'
        f'token_file = "{tmp_path}/hec-token"\nindexer_ack = true\n{fast}\n'
        f'[[sinks]]\ntype = "elasticsearch"\nname = "elastic"\nurl = "{es.url}"\n{fast}\n'
    )


def run_once(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, KEY_ENV: KEY},
    )


def received(
    tmp_path: Path, hec: FakeHec, hook: FakeWebhook, es: FakeElasticsearch, syslog: Rsyslog
) -> dict[str, Counter[str]]:
    file_ids = [
        orjson.loads(line)["id"]
        for line in (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    ]
    return {
        "file": Counter(file_ids),
        "syslog": Counter(r.body()["id"] for r in syslog.sync()),
        "webhook": Counter(hook.ids()),
        "splunk": Counter(hec.event_ids()),
        "elastic": Counter(es.docs().keys()),
    }


def test_one_receiver_down_the_others_advance_and_it_catches_up(tmp_path: Path) -> None:
    """With Elasticsearch down, the other four get everything (exit 5); once it is back, it catches up and nothing is lost or doubled."""
    rsyslogd_path()  # skips (or fails under SHIPPER_REQUIRE_RSYSLOG=1) without rsyslogd
    events = generate_events(400, start=T0 - 86400, end=T0, seed=11)
    hec, hook = FakeHec({HEC_TOKEN: Token(ack=True)}), FakeWebhook()
    with (
        Emulator(api_key=KEY, events=events) as emu,
        hec.receiver,
        hook.receiver,
        FakeElasticsearch() as es,
        Rsyslog(tmp_path / "rsyslog") as syslog,
    ):
        config = write_config(
            tmp_path,
            config_text(emu.base_url, tmp_path, sinks=sinks_toml(tmp_path, hec, hook, es, syslog)),
        )
        with es.down():
            first = run_once(config)
        assert first.returncode == 5, first.stderr[-3000:]
        truth = {e["id"] for e in emu.events()}
        got = received(tmp_path, hec, hook, es, syslog)
        for name in ("file", "syslog", "webhook", "splunk"):
            assert set(got[name]) == truth, name
        assert not got["elastic"]
        cursor = CursorStore(tmp_path / "state", "default").load("elastic")
        assert cursor is None or cursor.high_water <= min(e["effective_at"] for e in emu.events())

        late = {e["id"] for e in emu.add_late_events(10, max_age=120)}
        second = run_once(config)
        assert second.returncode == 0, second.stderr[-3000:]
        truth |= late
        got = received(tmp_path, hec, hook, es, syslog)
    for name, counts in got.items():
        assert set(counts) == truth, name
        assert max(counts.values()) == 1, f"{name} got duplicates"
