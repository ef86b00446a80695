"""The performance work on the hot path keeps its promises: planning, overflow, 429s, connections, memory."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from shipper.config.settings import AuditLogSettings, load_config
from shipper.emulator import Emulator, Fault, generate_events, is_tenant_scoped
from shipper.emulator.stats import Stats
from shipper.http.guard import environment_proxy
from shipper.model.event import AuditEvent
from shipper.pipeline.sink import SinkContext
from shipper.pipeline.windows import WindowOverflowError, WindowPlanner
from shipper.runtime import app
from shipper.source.audit_log.client import AuditLogClient
from sinks.file.sink import FileSettings, FileSink
from tests.conftest import KEY, T0, config_text, write_config

# -- planning -------------------------------------------------------------------------------


def planned(planner: WindowPlanner) -> list[tuple[int, int]]:
    windows = []
    while not planner.done:
        windows.append(planner.next_window())
    return windows


def test_the_tail_of_a_span_is_spread_over_the_lanes() -> None:
    """With a known density, no window takes more than 1/lanes of what remains, so the end runs side by side."""
    planner = WindowPlanner(0, 100_000, target=1_000_000, length=100, lanes=4, min_events=10)
    planner.observe(0, 20_000, 20_000)  # one event a second: the target alone would allow 160,000 s
    windows = planned(planner)
    assert windows[0] == (0, 25_000)
    assert len(windows) > 4 and windows[-1][1] == 100_000
    assert all(b > a for a, b in windows) and windows == sorted(windows)


def test_spreading_never_cuts_below_a_window_worth_its_requests() -> None:
    """Windows are not cut below about `min_events` events, however many lanes there are."""
    planner = WindowPlanner(0, 10_000, target=1_000_000, length=100, lanes=32, min_events=400)
    planner.observe(0, 40_000, 4_000)  # 0.1 events a second: 400 events take 4000 s
    assert [b - a for a, b in planned(planner)][:2] == [4000, 4000]


def test_one_window_at_a_time_until_an_event_was_seen() -> None:
    """Lengths grown over empty history are not repeated `lanes` times into the first dense stretch."""
    planner = WindowPlanner(0, 10**6, target=100, lanes=8)
    assert planner.lookahead == 1
    planner.observe(0, 3600, 0)
    assert planner.lookahead == 1
    planner.observe(3600, 7200, 5)
    assert planner.lookahead == 8


# -- the source -----------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[Emulator]:
    events = generate_events(1500, start=T0 - 86_400, end=T0, seed=11)
    with Emulator(api_key=KEY, events=events) as emulator:
        yield emulator


def client(emu: Emulator, sleep: Any = lambda _: None, **overrides: Any) -> AuditLogClient:
    settings = AuditLogSettings(base_url=emu.base_url, retry_max_attempts=3, **overrides)
    return AuditLogClient(settings, SecretStr(KEY), sleep=sleep)


def test_events_are_held_as_exact_json_bytes(emu: Emulator) -> None:
    """A fetched event holds its object's compact JSON (no spare buffer) and decodes to what the API sent."""
    c = client(emu)
    events = c.fetch_window(T0 - 86_400, T0)
    c.close()
    truth = {e["id"]: e for e in emu.events()}
    assert [e.id for e in events] == list(truth)
    for event in events[:50]:
        assert event.raw == truth[event.id]
        assert event.json == orjson.dumps(truth[event.id])
        assert event.json is not orjson.dumps(truth[event.id])


def test_a_crowded_first_page_ends_the_window_at_once(emu: Emulator) -> None:
    """A first page that spans a sliver of the window foretells an overflow: one page, not the limit."""
    c = client(emu, include_tenant_events=False)
    before = emu.stats.list_requests
    with pytest.raises(WindowOverflowError, match="on course") as info:
        c.fetch_window(T0 - 86_400, T0, limit=600)
    c.close()
    assert emu.stats.list_requests - before == 1
    seen, spread = info.value.seen, info.value.spread
    assert seen == 100 and 0 < spread < 86_400 and seen * 86_400 / spread > 600


def test_a_pass_gives_up_once_another_pass_of_its_window_overflowed(emu: Emulator) -> None:
    """The passes of a window share one `abandon` event: an overflow in one stops the others."""
    c = client(emu)
    abandon = threading.Event()
    with pytest.raises(WindowOverflowError, match="on course"):
        c.fetch_pass(T0 - 86_400, T0, tenant_only=False, limit=300, abandon=abandon)
    assert abandon.is_set()
    before = emu.stats.list_requests
    with pytest.raises(WindowOverflowError, match="another pass"):
        c.fetch_pass(T0 - 86_400, T0, tenant_only=True, limit=300, abandon=abandon)
    c.close()
    assert emu.stats.list_requests == before


def test_overflow_reports_how_many_events_it_saw(tmp_path: Path) -> None:
    """Past the limit, an overfull window says how many events it held, over how long."""
    sparse = generate_events(100, start=T0 - 43_200, end=T0, seed=3)  # the first page: 100 in 12 h
    dense = generate_events(1000, start=T0 - 86_400, end=T0 - 82_800, seed=4)  # 1000 in an hour
    with Emulator(api_key=KEY, events=sparse + dense) as emulator:
        c = client(emulator, include_tenant_events=False)
        with pytest.raises(WindowOverflowError, match="more than 300") as info:
            c.fetch_pass(T0 - 86_400, T0, tenant_only=False, limit=300)
        c.close()
    assert 300 < info.value.seen <= 400  # gave up on the page that went past the limit
    assert info.value.earliest is not None and info.value.spread > 43_200


def test_a_retry_after_holds_back_every_fetch(emu: Emulator) -> None:
    """A 429's Retry-After pauses the client's other requests too, not only the retried one."""
    slept: list[float] = []
    c = client(emu, sleep=slept.append)
    emu.inject(Fault(kind="429", retry_after="7"))
    c.fetch_pass(T0 - 3600, T0, tenant_only=False)
    slept.clear()
    c.fetch_pass(T0 - 3600, T0, tenant_only=True)  # as another thread would, within the 7 s
    c.close()
    assert slept and 6 < slept[0] <= 7


def test_an_idle_connection_the_server_closed_is_replaced_silently(emu: Emulator) -> None:
    """A keep-alive connection dropped while idle is not a failure: no retry, no warning."""
    c = client(emu)
    c.fetch_pass(T0 - 3600, T0, tenant_only=False)
    emu.stop()
    emu.start()  # same port; every connection of the old server was closed
    c.fetch_pass(T0 - 3600, T0, tenant_only=False)
    c.close()
    assert c.retries == 0


class _Proxy(http.server.BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy that records the absolute request targets it relays."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        request = urllib.request.Request(self.path, headers=dict(self.headers))
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as answer:
            body = answer.read()
            self.send_response(answer.status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_requests_go_through_the_proxy_the_environment_names(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY / NO_PROXY are honoured as httpx honoured them."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "")
    try:
        c = client(emu)
        found = c.fetch_pass(T0 - 3600, T0, tenant_only=False)
        c.close()
    finally:
        server.shutdown()
        server.server_close()
    assert _Proxy.seen and _Proxy.seen[0].startswith(f"{emu.base_url}/organization/audit_logs?")
    expected = [
        e["id"]
        for e in emu.events()
        if T0 - 3600 <= e["effective_at"] < T0 and not is_tenant_scoped(e["type"])
    ]
    assert sorted(found) == sorted(expected)


def test_the_proxy_is_chosen_per_scheme_and_skipped_for_no_proxy_hosts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY for https, HTTP_PROXY for http, ALL_PROXY otherwise; NO_PROXY connects directly."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        for variant in (name, name.lower()):
            monkeypatch.delenv(variant, raising=False)
    assert environment_proxy("https://api.openai.com/v1") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("ALL_PROXY", "http://all.corp:3128")
    assert environment_proxy("https://api.openai.com/v1") == "http://proxy.corp:3128"
    assert environment_proxy("http://api.openai.com/v1") == "http://all.corp:3128"
    monkeypatch.setenv("NO_PROXY", "localhost,.openai.com")
    assert environment_proxy("https://api.openai.com/v1") is None
    assert environment_proxy("https://other.example/v1") == "http://proxy.corp:3128"


# -- the pipeline ----------------------------------------------------------------------------


def backfill(
    tmp_path: Path, events: list[dict[str, Any]], *, days_back: int, source: str
) -> tuple[Any, Stats, list[bytes]]:
    """One `run --once` from `days_back` days before T0 over `events`: report, API stats, lines."""
    with Emulator(api_key=KEY, events=events) as emulator:
        text = config_text(
            emulator.base_url, tmp_path, start_at=T0 - days_back * 86_400, extra_source=source
        )
        outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
        stats = emulator.stats
    return outcome.reports[0], stats, (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()


def test_a_dense_burst_after_quiet_history_is_delivered_whole_and_in_order(
    tmp_path: Path, admin_key: str
) -> None:
    """Windows grown over empty days overflow at a burst; the pieces still deliver every event once, in order."""
    burst = generate_events(3000, start=T0 - 7200, end=T0 - 3600, seed=5)
    report, stats, out = backfill(
        tmp_path, burst, days_back=20, source="window_max_events = 200\nconcurrency = 4\n"
    )
    expected = sorted(burst, key=lambda e: (e["effective_at"], e["id"]))
    assert [orjson.loads(line)["id"] for line in out] == [e["id"] for e in expected]
    assert 3000 // (4 * 200) <= report.windows < 100
    assert stats.list_requests < 300  # cut by what was seen, never by the thousand


def test_a_window_grown_over_quiet_history_overflows_once_not_once_per_piece(
    tmp_path: Path, admin_key: str
) -> None:
    """Cut by the density its overflow saw, a long window into dense history wastes one limit's fetch."""
    dense = generate_events(8000, start=T0 - 4 * 86_400, end=T0 - 3600, seed=6)
    report, stats, out = backfill(
        tmp_path, dense, days_back=60, source="window_max_events = 200\nconcurrency = 1\n"
    )
    assert len(out) == 8000 and report.fetched == 8000
    # An overflow is foreseen from the first page, so each costs at most a page a pass;
    # equal cuts by `seen` overflowed piece after piece, reading up to 800 events each time.
    assert stats.events_listed <= 8000 + 10 * 2 * 100


# -- the file sink --------------------------------------------------------------------------


def test_templated_paths_follow_each_events_own_day_and_hour(tmp_path: Path) -> None:
    """Cached per-day (or per-second) paths name the same file the event's own time would."""
    events = [
        AuditEvent.from_api({"id": f"e{i}", "type": "x.y", "effective_at": t}, compact=True)
        for i, t in enumerate((86_399, 86_400, 86_400 + 3599, 86_400 + 3600))
    ]
    for template, expected in (
        ("%Y-%m-%d", ["1970-01-01", "1970-01-02", "1970-01-02", "1970-01-02"]),
        ("%Y-%m-%dT%H", ["1970-01-01T23", "1970-01-02T00", "1970-01-02T00", "1970-01-02T01"]),
    ):
        settings = FileSettings(type="file", name="f", path=f"{tmp_path}/{template}.jsonl")
        sink = FileSink(settings, SinkContext(state_dir=tmp_path))
        sink.send(events)
        sink.flush()
        sink.close()
        files = {p.stem: p.read_bytes().splitlines() for p in tmp_path.glob("*.jsonl")}
        for event, day in zip(events, expected, strict=True):
            assert event.json in files[day]
        for path in tmp_path.glob("*.jsonl"):
            path.unlink()
