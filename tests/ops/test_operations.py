"""Operating the shipper: metrics and health in follow mode, textfile for cron, many organizations."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.runtime import app
from shipper.runtime.metrics import HealthServer, Metrics
from tests.conftest import KEY, KEY_ENV, T0, config_text, follow_mode, write_config


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition, 0 if absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == want:
            return float(match.group(2))
    return 0.0


def poll(
    url: str, until: Callable[[httpx.Response], bool], timeout: float = 30.0
) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url, timeout=5)
        if until(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_follow_mode_serves_metrics_health_and_readiness(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A running follow-mode process serves /metrics, /healthz and /readyz; counters move as events arrive."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    with follow_mode(config) as proc:
        assert proc.stderr is not None
        port = None
        for _ in range(200):
            line = proc.stderr.readline()
            if '"metrics_listening"' in line:
                port = orjson.loads(line)["port"]
                break
        assert port, "the process never said where it listens"
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
        total = len(emulator.events())
        scrape = poll(
            f"{base}/metrics",
            lambda r: metric(r.text, "shipper_cycles_total", source="default", result="ok") >= 1,
        )
        assert (
            metric(scrape.text, "shipper_events_delivered_total", source="default", sink="archive")
            == total
        )
        assert metric(scrape.text, "shipper_events_fetched_total", source="default") >= total
        assert metric(scrape.text, "shipper_sink_up", source="default", sink="archive") == 1
        assert (
            0
            <= metric(scrape.text, "shipper_cursor_lag_seconds", source="default", sink="archive")
            < 600
        )
        assert poll(f"{base}/readyz", lambda r: r.status_code == 200).status_code == 200
        emulator.add_late_events(7, max_age=20)
        scrape = poll(
            f"{base}/metrics",
            lambda r: (
                metric(r.text, "shipper_events_delivered_total", source="default", sink="archive")
                >= total + 7
            ),
        )
        assert (
            metric(scrape.text, "shipper_events_delivered_total", source="default", sink="archive")
            == total + 7
        )
        assert KEY not in scrape.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_readyz_fails_until_a_cycle_succeeded() -> None:
    """/readyz is 503 before any successful cycle and 200 right after one."""
    metrics = Metrics()
    server = HealthServer("127.0.0.1:0", metrics, ready_after=60).start()
    try:
        url = f"http://127.0.0.1:{server.port}/readyz"
        assert httpx.get(url, timeout=5).status_code == 503
        metrics.last_ready = time.time()
        assert httpx.get(url, timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{server.port}/nope", timeout=5).status_code == 404
    finally:
        server.stop()


def test_cron_mode_writes_a_textfile(emulator: Emulator, tmp_path: Path, admin_key: str) -> None:
    """With [metrics] textfile, a --once run leaves node_exporter-format metrics behind."""
    text = config_text(emulator.base_url, tmp_path).replace(
        '[metrics]\nlisten = "127.0.0.1:0"', f'[metrics]\ntextfile = "{tmp_path}/prom/shipper.prom"'
    )
    outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
    assert exit_code_of_run(outcome) == ExitCode.OK
    exposition = (tmp_path / "prom" / "shipper.prom").read_text()
    assert metric(
        exposition, "shipper_events_delivered_total", source="default", sink="archive"
    ) == len(emulator.events())
    assert (
        metric(exposition, "shipper_last_successful_cycle_timestamp_seconds", source="default") > T0
    )


def two_org_config(tmp_path: Path, url_a: str, url_b: str, key_b_env: str) -> str:
    base = config_text(url_a, tmp_path).split("[state]")[1]
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 - 3 * 86400))
    sources = "".join(
        f'[[sources]]\nname = "{name}"\norganization = "{org}"\nbase_url = "{url}"\n'
        f'api_key_env = "{env}"\nstart_at = "{start}"\nretry_max_time = "10s"\n\n'
        for name, org, url, env in (
            ("acme", "Acme Corp", url_a, KEY_ENV),
            ("globex", "Globex", url_b, key_b_env),
        )
    )
    return sources + "[state]" + base.replace('format = "raw"', 'format = "normalized"')


def test_two_organizations_end_to_end(
    tmp_path: Path, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[[sources]] with two keys and two organizations: every event lands, labelled with its organization."""
    key_b = "sk-admin-globex-key-5555555555"
    monkeypatch.setenv("SHIPPER_TEST_KEY_B", key_b)
    a_events = generate_events(150, start=T0 - 86400, end=T0, seed=1, id_prefix="audit_log-acme-")
    b_events = generate_events(120, start=T0 - 86400, end=T0, seed=2, id_prefix="audit_log-globex-")
    with Emulator(api_key=KEY, events=a_events) as a, Emulator(api_key=key_b, events=b_events) as b:
        config = load_config(
            write_config(
                tmp_path, two_org_config(tmp_path, a.base_url, b.base_url, "SHIPPER_TEST_KEY_B")
            )
        )
        assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    docs = [
        orjson.loads(line) for line in (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    ]
    by_org: dict[str, set[str]] = {}
    for doc in docs:
        by_org.setdefault(doc["organization"], set()).add(doc["id"])
    assert by_org == {
        "Acme Corp": {e["id"] for e in a_events},
        "Globex": {e["id"] for e in b_events},
    }
    assert (tmp_path / "state" / "acme" / "cursors" / "archive.json").exists()
    assert (tmp_path / "state" / "globex" / "cursors" / "archive.json").exists()


def test_one_organizations_bad_key_does_not_stop_the_other(
    tmp_path: Path, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several sources, a revoked key for one yields exit 3 while the other is still delivered."""
    monkeypatch.setenv("SHIPPER_TEST_KEY_B", "sk-admin-revoked-000000000000")
    a_events = generate_events(50, start=T0 - 86400, end=T0, seed=1)
    with (
        Emulator(api_key=KEY, events=a_events) as a,
        Emulator(api_key="sk-admin-other", events=[]) as b,
    ):
        config = load_config(
            write_config(
                tmp_path, two_org_config(tmp_path, a.base_url, b.base_url, "SHIPPER_TEST_KEY_B")
            )
        )
        outcome = app.run(config, once=True)
    assert exit_code_of_run(outcome) == ExitCode.SOURCE_REFUSED
    lines = (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    assert len(lines) == len(a_events)


def test_api_latency_and_retry_causes_are_measured(emulator: Emulator) -> None:
    """Every API request lands in the latency histogram; retries are counted by their cause."""
    from pydantic import SecretStr

    from shipper.config.settings import AuditLogSettings
    from shipper.emulator import Fault
    from shipper.source.audit_log.client import AuditLogClient

    metrics = Metrics()
    emulator.inject(Fault(kind="timeout", delay=1.5))
    emulator.inject(Fault(kind="503"))
    settings = AuditLogSettings(base_url=emulator.base_url, request_timeout=0.5)
    client = AuditLogClient(settings, SecretStr(KEY), sleep=lambda _: None, metrics=metrics)
    try:
        client.fetch_window(T0 - 3600, T0)
    finally:
        client.close()
    text = metrics.exposition().decode()
    assert (
        metric(text, "shipper_api_request_duration_seconds_count", source="default")
        == client.requests
    )
    assert metric(text, "shipper_api_retries_total", source="default", cause="timeout") == 1
    assert metric(text, "shipper_api_retries_total", source="default", cause="http_503") == 1
