"""Follow mode never dies of a bug: a failing cycle is logged, counted, backed off and retried."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import AuditLogSettings, SourceSettings, load_config
from shipper.emulator import Emulator, generate_events
from shipper.runtime import app
from shipper.runtime.metrics import Metrics
from shipper.source.audit_log.client import AuditLogClient
from shipper.testing.receivers.base import Receiver, Recorded, Reply
from tests.conftest import KEY, T0, config_text, write_config

DEEP = b'{"x":' * 1000 + b"1" + b"}" * 1000
ENTRY_1000_DEEP = (
    b'{"object":"list","data":[{"id":"audit_log-deep","object":"organization.audit_log",'
    b'"type":"api_key.created","effective_at":1749999000,"x":'
    + b'{"a":' * 1000
    + b"1"
    + b"}" * 1000
    + b'}],"first_id":"audit_log-deep","last_id":"audit_log-deep","has_more":false}'
)


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    events = generate_events(300, start=T0 - 2 * 86400, end=T0, seed=7)
    with Emulator(api_key=KEY, events=events) as emu:
        yield emu


class BreakableApi:
    """A loopback front of the emulator that answers a broken body until healed."""

    def __init__(self, emulator: Emulator, broken: Reply) -> None:
        self.emulator = emulator
        self.broken: Reply | None = broken
        self.broken_answers = 0

    def __call__(self, request: Recorded) -> Reply:
        if self.broken is not None:
            self.broken_answers += 1
            return self.broken
        query = urlencode(request.query, doseq=True)
        url = f"http://127.0.0.1:{self.emulator.port}{request.path}?{query}"
        answer = httpx.get(url, headers={"authorization": request.headers["authorization"]})
        return Reply(answer.status_code, answer.content, {"content-type": "application/json"})


def following(config: Any) -> tuple[threading.Event, list[Any], threading.Thread]:
    """Follow mode in a thread: its stop event, where its outcome (or exception) lands, the thread."""
    stop = threading.Event()
    ended: list[Any] = []

    def follow() -> None:
        try:
            ended.append(app.run(config, once=False, stop=stop))
        except BaseException as exc:
            ended.append(exc)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return stop, ended, thread


@pytest.mark.parametrize(
    "broken",
    [
        Reply(200, DEEP, {"content-type": "application/json"}),
        Reply(200, b'{"object": "list"}', {"content-encoding": "gzip"}),
    ],
    ids=["body_nested_1000_deep", "gzip_mismatch"],
)
def test_follow_mode_survives_broken_api_bodies_and_recovers_when_the_api_heals(
    emulator: Emulator, tmp_path: Path, admin_key: str, broken: Reply
) -> None:
    """An API answering a body nested 1,000 levels, or one that is not the gzip it says it is:
    follow mode keeps running through several cycles, then delivers everything once it heals."""
    api = BreakableApi(emulator, broken)
    with Receiver(api) as rx:
        extra = "retry_max_attempts = 2\n"
        text = config_text(rx.url + "/v1", tmp_path, extra_source=extra)
        config = load_config(write_config(tmp_path, text))
        stop, ended, thread = following(config)
        try:
            wait_until(lambda: api.broken_answers >= 6 or bool(ended), 60, "no broken answers")
            assert not ended, ended  # follow mode is still running
            api.broken = None
            expected = [e["id"] for e in emulator.events()]
            out = tmp_path / "out" / "audit.jsonl"
            wait_until(lambda: ids_in(out) == expected or bool(ended), 60, "never recovered")
            assert not ended, ended
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert exit_code_of_run(ended[0]) == ExitCode.OK


def test_follow_mode_quarantines_an_entry_nested_1000_deep_and_keeps_cycling(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """An entry nested 1,000 levels in an otherwise good page: no crash, no stall; it is kept in
    the source's quarantine (the page itself is readable, so the cycle goes on)."""
    api = BreakableApi(emulator, Reply(200, ENTRY_1000_DEEP, {"content-type": "application/json"}))
    with Receiver(api) as rx:
        config = load_config(write_config(tmp_path, config_text(rx.url + "/v1", tmp_path)))
        stop, ended, thread = following(config)
        kept = config.state.dir / "default" / "quarantine.jsonl"
        try:
            wait_until(lambda: api.broken_answers >= 6 or bool(ended), 60, "no answers")
            assert not ended, ended  # follow mode is still running
            wait_until(lambda: kept.exists() and b"audit_log-deep" in kept.read_bytes(), 30, "kept")
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    assert exit_code_of_run(ended[0]) == ExitCode.OK


def crashed_cycles(metrics: Metrics) -> float:
    labels = {"source": "default", "result": "crashed"}
    return metrics.registry.get_sample_value("shipper_cycles_total", labels) or 0.0


class CrashingTransport(httpx.BaseTransport):
    """Raises an unexpected error until `cycles` cycles crashed, then reaches the emulator."""

    def __init__(self, metrics: Metrics, cycles: int) -> None:
        self.metrics = metrics
        self.cycles = cycles
        self.crashed_at: dict[float, float] = {}  # crashed cycles so far -> first crash's time
        self._real = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        crashed = crashed_cycles(self.metrics)
        if crashed < self.cycles:
            self.crashed_at.setdefault(crashed, time.monotonic())
            raise RecursionError("maximum recursion depth exceeded (a bug)")
        return self._real.handle_request(request)

    def close(self) -> None:
        self._real.close()


def test_a_crashing_cycle_is_logged_with_its_traceback_counted_and_retried_with_backoff(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """Any exception in a follow-mode cycle: `cycle_crashed` with the traceback, counted in
    shipper_cycles{result="crashed"}, the next cycle after a pause doubling from poll_interval."""
    metrics = Metrics()
    transport = CrashingTransport(metrics, cycles=3)

    def client(settings: SourceSettings, m: Metrics | None) -> AuditLogClient:
        assert isinstance(settings, AuditLogSettings)
        return AuditLogClient(settings, SecretStr(KEY), transport=transport, metrics=m)

    config = load_config(write_config(tmp_path, config_text(emulator.base_url, tmp_path)))
    stop = threading.Event()
    out = tmp_path / "out" / "audit.jsonl"
    expected = [e["id"] for e in emulator.events()]

    def on_cycle(report: Any) -> None:
        if ids_in(out) == expected:
            stop.set()

    with capture_logs() as logs:
        outcome = app.run(
            config,
            once=False,
            stop=stop,
            on_cycle=on_cycle,
            client_factory=client,
            metrics=metrics,
        )
    assert exit_code_of_run(outcome) == ExitCode.OK
    crashed = [entry for entry in logs if entry["event"] == "cycle_crashed"]
    assert len(crashed) == 3
    assert all(entry.get("exc_info") for entry in crashed)
    assert crashed_cycles(metrics) == 3
    first, second, third = (transport.crashed_at[n] for n in (0, 1, 2))
    assert second - first >= 1.0 * 0.95  # poll_interval
    assert third - second >= 2.0 * 0.95  # doubled
    assert ids_in(out) == expected


def test_pause_after_failed_cycles_doubles_from_poll_interval_up_to_a_bound() -> None:
    """Follow mode's pause after failed cycles doubles from poll_interval up to MAX_BACKOFF, never below poll_interval."""
    assert [app.pause_after(10, n) for n in range(6)] == [10, 10, 20, 40, 80, 160]
    assert app.pause_after(10, 50) == app.MAX_BACKOFF
    assert app.pause_after(600, 9) == 600  # never below poll_interval
