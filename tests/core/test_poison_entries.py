"""One unreadable entry from the API never blinds the SIEM: it is quarantined with its bytes, the
window, the pass and the request id; every other event reaches the sinks; a damaged body is
still retried; paging that never ends is an error, not a hang. Served by a hand-made loopback API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.cli.main import main
from shipper.config.settings import AuditLogSettings, Config, load_config
from shipper.emulator import Emulator, generate_events
from shipper.errors import SourceUnavailableError
from shipper.runtime import app
from shipper.runtime.metrics import Metrics
from shipper.source import quarantine
from shipper.source.audit_log.client import MAX_BARREN_PAGES, AuditLogClient
from shipper.source.audit_log.parse import Defect
from shipper.source.quarantine import Listed, Quarantine
from shipper.testing.receivers.base import Receiver, Recorded, Reply
from tests.conftest import KEY, config_text, write_config
from tests.receivers.handmade_api import HandmadeApi

NOW = int(time.time())  # a cycle runs up to the real clock
FIRST = NOW - 3000


def good(index: int, when: int | None = None) -> bytes:
    stamp = FIRST + 100 * index if when is None else when
    return orjson.dumps(
        {
            "id": f"evt_{index:03d}",
            "object": "organization.audit_log",
            "type": "login.succeeded",
            "effective_at": stamp,
            "actor": {
                "type": "session",
                "session": {"user": {"id": "user_1", "email": "a@example.com"}},
            },
        }
    )


def _poison(body: str) -> Callable[[int], bytes]:
    return lambda when: body.replace("WHEN", str(when)).encode("latin-1")


DEEP = "[" * 5000 + "]" * 5000
POISON: dict[str, Callable[[int], bytes]] = {
    "lone-surrogate": _poison(
        '{"id":"evt_poison","type":"login.succeeded","effective_at":WHEN,'
        '"actor":{"type":"session","session":{"user":{"email":"x\\ud800@evil.example"}}}}'
    ),
    "missing-id": _poison('{"type":"login.succeeded","effective_at":WHEN}'),
    "number-id": _poison('{"id":42,"type":"login.succeeded","effective_at":WHEN}'),
    "text-time": _poison('{"id":"evt_poison","type":"login.succeeded","effective_at":"WHEN"}'),
    "year-10000": lambda when: _poison(
        '{"id":"evt_poison","type":"login.succeeded","effective_at":WHEN}'
    )(253_402_300_800 + when),
    "too-deep": _poison('{"id":"evt_poison","effective_at":WHEN,"d":' + DEEP + "}"),
    "not-utf8": _poison('{"id":"evt_poison","effective_at":WHEN,"x":"caf\xe9"}'),
}

SINKS = (
    '[[sinks]]\ntype = "file"\nname = "archive"\npath = "{out}/raw.jsonl"\nformat = "raw"\n\n'
    '[[sinks]]\ntype = "file"\nname = "siem"\npath = "{out}/normalized.jsonl"\n'
    'format = "normalized"\n'
)


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


@pytest.fixture
def served(tmp_path: Path, admin_key: str) -> Iterator[Callable[[list[tuple[int, bytes]]], Path]]:
    """Serve the given entries; returns the path of a config with a raw and a normalized sink."""
    receivers: list[Receiver] = []

    def serve(entries: list[tuple[int, bytes]]) -> Path:
        api = HandmadeApi(entries)
        receiver = Receiver(api)
        receiver.start()
        receivers.append(receiver)
        serve.api = api  # type: ignore[attr-defined]
        text = config_text(
            f"{receiver.url}/v1",
            tmp_path,
            start_at=NOW - 3600,
            extra_source="page_size = 4\nretry_max_attempts = 2\n",
            sinks=SINKS.format(out=tmp_path / "out"),
        )
        return write_config(tmp_path, text)

    yield serve
    for receiver in receivers:
        receiver.stop()


def quarantined(config: Config) -> list[quarantine.Entry]:
    return quarantine.read_entries(quarantine.default_path(config.state.dir, "default"))


@pytest.mark.parametrize("kind", list(POISON))
def test_a_poison_entry_in_the_middle_of_a_page_is_quarantined_and_every_other_event_delivered(
    served: Callable[[list[tuple[int, bytes]]], Path],
    tmp_path: Path,
    kind: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Twelve entries, four a page, the sixth unreadable: the eleven others (of that page and
    the next) reach a raw and a normalized file sink; the entry is kept with its bytes, window,
    pass and request id; `status` shows it; replaying it keeps it while it is still unreadable."""
    poison = POISON[kind](FIRST + 500)
    entries = [(FIRST + 100 * i, poison if i == 5 else good(i)) for i in range(12)]
    config_path = served(entries)
    config = load_config(config_path)

    with capture_logs() as logs:
        outcome = app.run(config, once=True)

    assert exit_code_of_run(outcome) == ExitCode.OK
    expected = [f"evt_{i:03d}" for i in range(12) if i != 5]
    assert ids_in(tmp_path / "out" / "raw.jsonl") == expected
    assert ids_in(tmp_path / "out" / "normalized.jsonl") == expected
    [entry] = quarantined(config)
    assert entry.raw == poison
    assert entry.doc["request_id"] == served.api.request_of(poison)  # type: ignore[attr-defined]
    assert entry.doc["tenant_only"] is False and entry.doc["reason"]
    assert entry.doc["window_start"] <= FIRST + 500 < entry.doc["window_end"]
    [line] = [e for e in logs if e["event"] == "entries_quarantined"]
    assert line["log_level"] == "error" and line["request_id"] == entry.doc["request_id"]

    assert main(["status", "--config", str(config_path), "--json"]) == 0
    [source] = orjson.loads(capsys.readouterr().out)["sources"]
    assert source["quarantined"] == 1
    assert main(["status", "--config", str(config_path)]) == 0
    assert "QUARANTINED: 1" in capsys.readouterr().out
    assert main(["quarantine", "list", "--config", str(config_path)]) == 0
    assert entry.doc["request_id"] in capsys.readouterr().out

    assert main(["quarantine", "replay", "--config", str(config_path)]) == 5
    assert "1 still unreadable" in capsys.readouterr().out
    assert [e.raw for e in quarantined(config)] == [poison]


def test_quarantine_replay_delivers_what_is_now_readable_and_keeps_the_rest(
    served: Callable[[list[tuple[int, bytes]]], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Entries an older version set apart that this one reads go to every sink and leave the
    quarantine; the ones still unreadable stay."""
    config = load_config(served([]))
    path = quarantine.default_path(config.state.dir, "default")
    readable, unreadable = good(1), POISON["missing-id"](FIRST)
    listed = Listed(FIRST, FIRST + 3600, False, "req_old")
    path.parent.mkdir(parents=True)
    path.write_bytes(
        quarantine.record(
            "default", Defect(readable, "read by an older version", "bad_time"), listed, NOW
        )
        + quarantine.record("default", Defect(unreadable, "no id", "not_an_event"), listed, NOW)
    )
    assert main(["quarantine", "replay", "--config", str(config.path)]) == 5
    assert "delivered 1 of 2" in capsys.readouterr().out
    assert ids_in(tmp_path / "out" / "raw.jsonl") == ["evt_001"]
    assert ids_in(tmp_path / "out" / "normalized.jsonl") == ["evt_001"]
    assert [e.raw for e in quarantined(config)] == [unreadable]


def test_events_outside_the_window_asked_for_are_delivered_and_counted(
    served: Callable[[list[tuple[int, bytes]]], Path], tmp_path: Path
) -> None:
    """An event the API lists for a window its time is not in (days older, or in the future)
    is delivered all the same, and a warning counts it."""
    old, future = good(7, NOW - 5 * 86400), good(8, NOW + 30 * 86400)
    entries = [(FIRST + 100 * i, good(i)) for i in range(4)] + [(FIRST, old), (FIRST + 1, future)]
    config = load_config(served(entries))
    with capture_logs() as logs:
        assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    expected = {"evt_000", "evt_001", "evt_002", "evt_003", "evt_007", "evt_008"}
    assert set(ids_in(tmp_path / "out" / "raw.jsonl")) == expected
    assert set(ids_in(tmp_path / "out" / "normalized.jsonl")) == expected
    warned = [e for e in logs if e["event"] == "events_outside_window"]
    assert sum(e["count"] for e in warned) == 2 and warned[0]["log_level"] == "warning"


def _client(url: str, metrics: Metrics | None = None, **overrides: object) -> AuditLogClient:
    settings = AuditLogSettings(
        base_url=f"{url}/v1", page_size=4, retry_max_attempts=3, **overrides
    )
    return AuditLogClient(settings, SecretStr(KEY), sleep=lambda _: None, metrics=metrics)


def test_a_truncated_body_around_a_poison_entry_is_still_retried() -> None:
    """Damage to the body as a whole (here: cut short) is retried, poison entry or not; the
    retry's answer is then read entry by entry."""
    poison = POISON["lone-surrogate"](FIRST + 100)
    api = HandmadeApi([(FIRST, good(0)), (FIRST + 100, poison), (FIRST + 200, good(2))])

    def truncated(request: Recorded) -> Reply:
        reply = api(request)
        return Reply(200, reply.body[: len(reply.body) - 30], reply.headers)

    with Receiver(api) as rx:
        rx.script(truncated)
        client = _client(rx.url)
        try:
            events = client.fetch_window(FIRST, FIRST + 3600)
        finally:
            client.close()
    assert [e.id for e in events] == ["evt_000", "evt_002"]
    assert client.retries == 1


def test_an_entry_listed_again_is_kept_once_counted_once_and_reported_loudly_once(
    tmp_path: Path,
) -> None:
    """Later cycles list the entry again (lookback): the quarantine, the metric and the error
    line count it once."""
    poison = POISON["year-10000"](FIRST + 100)
    metrics = Metrics()
    with Receiver(HandmadeApi([(FIRST, good(0)), (FIRST + 100, poison)])) as rx:
        client = _client(rx.url, metrics)
        client.quarantine = Quarantine(tmp_path / "quarantine.jsonl", "default", metrics)
        try:
            with capture_logs() as logs:
                for _ in range(2):
                    assert [e.id for e in client.fetch_window(FIRST, FIRST + 3600)] == ["evt_000"]
        finally:
            client.close()
    assert [e.raw for e in quarantine.read_entries(tmp_path / "quarantine.jsonl")] == [poison]
    labels = {"source": "default", "kind": "bad_time"}
    assert metrics.registry.get_sample_value("shipper_quarantined_total", labels) == 1
    assert len([e for e in logs if e["event"] == "entries_quarantined"]) == 1


def test_pages_that_add_nothing_while_has_more_stays_true_are_an_api_anomaly() -> None:
    """Empty pages with a fresh cursor each time and has_more true: a few are tolerated, then a
    retryable error says which window and pass, after a bounded number of requests."""
    count = 0

    def barren(request: Recorded) -> Reply:
        nonlocal count
        count += 1
        more = b"true" if count < 50 else b"false"  # old code would page on to 100,000
        body = b'{"object":"list","data":[],"has_more":%s,"last_id":"cur_%d"}' % (more, count)
        return Reply(200, body, {"content-type": "application/json"})

    with Receiver(barren) as rx:
        client = _client(rx.url, include_tenant_events=False)
        try:
            with pytest.raises(SourceUnavailableError) as info:
                client.fetch_window(FIRST, FIRST + 3600)
        finally:
            client.close()
    message = str(info.value)
    assert f"{MAX_BARREN_PAGES} pages in a row with nothing new" in message
    assert f"[{FIRST}, {FIRST + 3600})" in message and "tenant_only=False" in message
    assert client.requests == MAX_BARREN_PAGES == 3


def test_an_event_a_format_cannot_hold_is_that_sinks_dead_letter_not_a_stall(
    served: Callable[[list[tuple[int, bytes]]], Path], tmp_path: Path
) -> None:
    """An event the source reads but a normalized renderer cannot write (nested 300 deep, past
    orjson's limit) is dead-lettered by that file sink; the raw sink and the other events flow."""
    deep = POISON["too-deep"](FIRST + 100).replace(DEEP.encode(), b"[" * 300 + b"]" * 300)
    entries = [(FIRST, good(0)), (FIRST + 100, deep), (FIRST + 200, good(2))]
    config = load_config(served(entries))
    assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
    assert ids_in(tmp_path / "out" / "raw.jsonl") == ["evt_000", "evt_poison", "evt_002"]
    assert ids_in(tmp_path / "out" / "normalized.jsonl") == ["evt_000", "evt_002"]
    dead = orjson.loads(config.state.dir.joinpath("dead-letter", "siem.jsonl").read_bytes())
    assert dead["event_id"] == "evt_poison" and "cannot render as normalized" in dead["reason"]
    assert quarantined(config) == []


def test_a_window_is_not_delivered_when_its_unreadable_entry_cannot_be_kept(tmp_path: Path) -> None:
    """A quarantine that cannot be written (here: its directory is a file) fails the window with
    a retryable error naming the file, so no cursor moves past an entry that was not kept."""
    (tmp_path / "blocked").write_text("")
    poison = POISON["missing-id"](FIRST + 100)
    with Receiver(HandmadeApi([(FIRST, good(0)), (FIRST + 100, poison)])) as rx:
        client = _client(rx.url)
        client.quarantine = Quarantine(tmp_path / "blocked" / "quarantine.jsonl", "default")
        try:
            with pytest.raises(SourceUnavailableError, match="cannot keep 1 unreadable entries"):
                client.fetch_window(FIRST, FIRST + 3600)
        finally:
            client.close()


def test_a_quarantine_line_cut_short_by_a_crash_does_not_swallow_the_next_one(
    tmp_path: Path,
) -> None:
    """A crash mid-append leaves a partial last line: it is skipped when read, and the next
    record starts on a line of its own."""
    path = tmp_path / "quarantine.jsonl"
    listed = Listed(FIRST, FIRST + 60, True, "req_1")
    whole = quarantine.record("default", Defect(b"7", "not an object", "not_an_event"), listed, NOW)
    path.write_bytes(whole + whole[:25])
    kept = Quarantine(path, "default")
    assert kept.keep([Defect(b"8", "not an object", "not_an_event")], listed) == 1
    assert kept.keep([Defect(b"7", "not an object", "not_an_event")], listed) == 0
    assert [e.raw for e in quarantine.read_entries(path)] == [b"7", b"8"]
    assert quarantine.read_entries(path)[1].doc["tenant_only"] is True


def test_the_emulator_serves_poison_and_the_run_quarantines_it_in_either_order(
    tmp_path: Path, admin_key: str, order: str
) -> None:
    """With the emulator listing newest or oldest first, a poison entry among generated events
    in each pass is quarantined with its pass, and every generated event reaches the sink (the
    chaos harness's fault)."""
    events = generate_events(120, start=NOW - 3000, end=NOW - 600, seed=11)
    poison, tenant_poison = POISON["lone-surrogate"](NOW - 1800), POISON["too-deep"](NOW - 900)
    with Emulator(api_key=KEY, events=events, order=order) as emu:  # type: ignore[arg-type]
        emu.add_poison(NOW - 1800, poison, place_id="evt_poison")
        emu.add_poison(NOW - 900, tenant_poison, place_id="evt_tenant_poison", tenant=True)
        text = config_text(
            emu.base_url, tmp_path, start_at=NOW - 3600, extra_source="page_size = 7\n"
        )
        config = load_config(write_config(tmp_path, text))
        assert exit_code_of_run(app.run(config, once=True)) == ExitCode.OK
        assert len(emu.events()) == 120
    assert sorted(ids_in(tmp_path / "out" / "audit.jsonl")) == sorted(e["id"] for e in events)
    kept = {e.raw: e.doc["tenant_only"] for e in quarantined(config)}
    assert kept == {poison: False, tenant_poison: True}


def test_pages_that_repeat_the_same_unreadable_entry_are_an_api_anomaly_too() -> None:
    """A page whose only entry is one the pass already set apart adds nothing either."""
    count = 0
    poison = POISON["missing-id"](FIRST)

    def repeating(request: Recorded) -> Reply:
        nonlocal count
        count += 1
        more = b"true" if count < 50 else b"false"
        body = b'{"data":[%s],"has_more":%s,"last_id":"cur_%d"}' % (poison, more, count)
        return Reply(200, body, {"content-type": "application/json"})

    with Receiver(repeating) as rx:
        client = _client(rx.url, include_tenant_events=False)
        try:
            with pytest.raises(SourceUnavailableError, match="pages in a row with nothing new"):
                client.fetch_window(FIRST, FIRST + 3600)
        finally:
            client.close()
    assert client.requests == 1 + MAX_BARREN_PAGES


def test_events_outside_the_window_are_counted_in_a_metric() -> None:
    """`shipper_events_outside_window_total` counts what the API listed out of its window."""
    metrics = Metrics()
    entries = [
        (FIRST, good(0)),
        (FIRST + 1, good(1, FIRST - 10)),
        (FIRST + 2, good(2, FIRST + 7200)),
    ]
    with Receiver(HandmadeApi(entries)) as rx:
        client = _client(rx.url, metrics)
        try:
            assert len(client.fetch_window(FIRST, FIRST + 3600)) == 3
        finally:
            client.close()
    labels = {"source": "default"}
    assert metrics.registry.get_sample_value("shipper_events_outside_window_total", labels) == 2
