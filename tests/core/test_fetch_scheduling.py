"""How windows are fetched at once: `concurrency` bounds the requests in flight, and a slow window
at the head of the line does not idle the other lanes, while delivery stays in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import AuditLogSettings, load_config
from shipper.emulator import Emulator, generate_events
from shipper.emulator.stats import Stats
from shipper.model.event import AuditEvent
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.cycle import Pipeline
from shipper.pipeline.delivery import SinkWorker
from shipper.pipeline.sink import SinkContext
from shipper.pipeline.windows import Found
from shipper.runtime import app
from sinks.file.sink import FileSettings, FileSink
from tests.conftest import KEY, T0, config_text, write_config


def ids_in(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def backfill(tmp_path: Path, extra_source: str, **emulator_options: Any) -> Stats:
    """A `run --once` over two days of history at 20 ms a page, every event landed in order;
    what the emulator saw of it."""
    events = generate_events(3000, start=T0 - 2 * 86400, end=T0, seed=5)
    with Emulator(api_key=KEY, events=events, page_delay=0.02, **emulator_options) as emulator:
        text = config_text(
            emulator.base_url, tmp_path, extra_source=f"window_max_events = 200\n{extra_source}"
        )
        outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
        expected = [e["id"] for e in emulator.events()]
        stats = emulator.stats
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert ids_in(tmp_path / "out" / "audit.jsonl") == expected
    return stats


def test_concurrency_bounds_the_api_requests_in_flight(tmp_path: Path, admin_key: str) -> None:
    """`concurrency = 3` means at most three list requests at once, whatever the passes per window."""
    stats = backfill(tmp_path, "concurrency = 3\n")  # waiting on the API: every lane is used
    assert 2 <= stats.most_lists_at_once <= 3


SPAN = 20_000  # seconds of history, one event every STEP seconds
STEP = 10
HELD_BACK = 1  # the index of the window whose pass waits for the test (the first one run in lanes)


class GatedClient:
    """Answers each window at once (after a short wait, like an API) except one, held until released.

    A `Source` (`passes`, `fetch_pass`) like `AuditLogClient`: the test is about scheduling, not HTTP.
    """

    passes = (False,)

    def __init__(self, lanes: int) -> None:
        self.lanes = lanes
        self.started: list[int] = []  # window starts, in the order their pass began
        self.sizes: list[int] = []  # events in each of those windows
        self.release = threading.Event()
        self.more_than_held = threading.Event()
        self.held_full = threading.Event()  # 2 x lanes windows held, the gated one included
        self._lock = threading.Lock()

    def api_clock_offset(self) -> float | None:
        return 0.0  # the API's clock agrees with the local one

    def final_until(self, since: int) -> int | None:
        return None

    def fetch_pass(self, start: int, end: int, *_: Any, **__: Any) -> Found:
        with self._lock:
            index = len(self.started)
            self.started.append(start)
            self.sizes.append(len(range(start + (-start) % STEP, end, STEP)))
            if index == HELD_BACK + 2 * self.lanes - 1:
                self.held_full.set()
            if index > HELD_BACK + 2 * self.lanes - 1:
                self.more_than_held.set()
        if index == HELD_BACK:
            self.release.wait(10)
        first = start + (-start) % STEP
        return Found(
            (f"e{t:06d}", AuditEvent(f"e{t:06d}", "x", t, json=b'{"id":"e%06d"}' % t))
            for t in range(first, end, STEP)
        )


@pytest.fixture
def gated_run(tmp_path: Path) -> Iterator[tuple[GatedClient, threading.Thread, Path]]:
    lanes = 3
    client = GatedClient(lanes)
    settings = AuditLogSettings(
        base_url="http://127.0.0.1:9", concurrency=lanes, window_max_events=100, page_size=10
    )
    out = tmp_path / "out.jsonl"
    sink = FileSink(
        FileSettings(type="file", name="f", path=str(out), format="raw"),
        SinkContext(state_dir=tmp_path),
    )
    worker = SinkWorker(
        name="f",
        sink=sink,
        cursor=Cursor(high_water=int(settings.lookback)),  # the span starts at 0
        store=CursorStore(tmp_path / "state", "default"),
        dead_letter_path=tmp_path / "dead.jsonl",
        lookback=int(settings.lookback),
    )
    pipeline = Pipeline(settings, client, [worker], clock=lambda: SPAN)  # type: ignore[arg-type]
    runner = threading.Thread(target=pipeline.run_cycle, daemon=True)
    runner.start()
    try:
        yield client, runner, out
    finally:
        client.release.set()
        runner.join(10)
        sink.close()


def test_a_slow_window_at_the_head_does_not_idle_the_other_lanes(
    gated_run: tuple[GatedClient, threading.Thread, Path],
) -> None:
    """While the oldest window in flight pages on, the lanes behind it take on further windows,
    up to as many fetched-and-waiting as are in flight; delivery still waits for the head."""
    client, runner, out = gated_run
    assert client.held_full.wait(10), f"only {len(client.started)} windows started"
    # Twice the lanes are held (in flight or fetched and waiting), and no more.
    assert not client.more_than_held.wait(0.3)
    delivered_before = ids_in(out) if out.exists() else []
    assert all(int(i[1:]) < client.started[HELD_BACK] for i in delivered_before)
    # Six windows held at once are each planned at two thirds of the target (100 events), so
    # that together they hold no more than four full windows would.
    assert max(client.sizes[HELD_BACK:]) <= 100 * 4 // 6 + 1

    client.release.set()
    runner.join(10)
    assert not runner.is_alive()
    ids = ids_in(out)
    assert ids == [f"e{t:06d}" for t in range(0, SPAN, STEP)]  # all of them, in order, once


def test_a_rate_limiter_narrows_the_requests_in_flight(tmp_path: Path, admin_key: str) -> None:
    """Against a gateway that refuses a third request at once, `concurrency = 8` settles near two
    in flight: most requests are answered, not refused and retried, and nothing is lost."""
    stats = backfill(tmp_path, "concurrency = 8\nretry_max_attempts = 30\n", max_concurrent_lists=2)
    refused = stats.responses_by_status.get(429, 0)
    assert refused < stats.list_requests / 4  # about 30 % when every refusal is simply retried
