"""/healthz tells a frozen process from a live one: it fails when nothing made progress."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import Rejection
from shipper.runtime import app
from shipper.runtime.metrics import HealthServer, Metrics
from sinks.file.sink import FileSink
from tests.conftest import KEY, T0, config_text, write_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_healthz_fails_after_live_after_without_progress_and_recovers_on_progress() -> None:
    """200 while progress is recent or a deliberate wait runs; 503 once live_after passes without."""
    clock = Clock()
    metrics = Metrics(clock=clock)
    server = HealthServer("127.0.0.1:0", metrics, ready_after=60, live_after=100).start()
    url = f"http://127.0.0.1:{server.port}/healthz"
    try:
        assert httpx.get(url, timeout=5).status_code == 200
        clock.now += 101
        answer = httpx.get(url, timeout=5)
        assert answer.status_code == 503
        assert "no progress for 101s" in answer.text
        metrics.liveness.beat()
        assert httpx.get(url, timeout=5).status_code == 200
        metrics.liveness.waiting(500)  # e.g. a back-off after failed cycles
        clock.now += 550
        assert httpx.get(url, timeout=5).status_code == 200
        clock.now += 51
        assert httpx.get(url, timeout=5).status_code == 503
    finally:
        server.stop()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    events = generate_events(300, start=T0 - 2 * 86400, end=T0, seed=7)
    with Emulator(api_key=KEY, events=events) as emu:
        yield emu


def test_healthz_turns_unhealthy_when_follow_mode_freezes_and_healthy_when_it_moves_again(
    emulator: Emulator, tmp_path: Path, admin_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follow-mode process frozen inside a sink (a wait nothing bounds): /healthz answers 503
    once live_after passes with no progress; when it moves again, 200."""
    entered, release = threading.Event(), threading.Event()
    deliver = FileSink.send

    def frozen_send(self: FileSink, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        entered.set()
        release.wait(60)
        return deliver(self, batch)

    monkeypatch.setattr(FileSink, "send", frozen_send)
    clock = Clock()
    metrics = Metrics(clock=clock)
    text = config_text(emulator.base_url, tmp_path).replace(
        '[metrics]\nlisten = "127.0.0.1:0"', '[metrics]\nlisten = "127.0.0.1:0"\nlive_after = "30s"'
    )
    config = load_config(write_config(tmp_path, text))
    stop = threading.Event()
    ports: list[int] = []
    cycles: list[Any] = []
    thread = threading.Thread(
        target=app.run,
        args=(config,),
        kwargs={
            "once": False,
            "stop": stop,
            "metrics": metrics,
            "on_listening": ports.append,
            "on_cycle": cycles.append,
        },
        daemon=True,
    )
    thread.start()
    try:
        assert entered.wait(30)
        url = f"http://127.0.0.1:{ports[0]}/healthz"
        assert httpx.get(url, timeout=5).status_code == 200
        # Windows ahead of the frozen sink are still fetched (API answers are progress) until
        # the lookahead is full; from then on, nothing beats and 31 s later it is unhealthy.
        for _ in range(100):
            clock.now += 31
            if httpx.get(url, timeout=5).status_code == 503:
                break
        assert httpx.get(url, timeout=5).status_code == 503
        release.set()
        wait_until(lambda: bool(cycles), 30, "the cycle never ended")
        assert httpx.get(url, timeout=5).status_code == 200
    finally:
        release.set()
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
