"""Receivers that choke on one event, refuse everything, or fail partway through a window."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.http.isolate import in_a_row_limit
from shipper.runtime import app
from shipper.testing.receivers.base import Recorded, Reply
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from shipper.testing.receivers.splunk_hec import FakeHec, Token
from shipper.testing.receivers.webhook import FakeWebhook
from tests.conftest import KEY, T0, config_text, write_config

FAST = 'retry_max_attempts = 1\nretry_max_time = "5s"\n'
HEC_TOKEN = "refusals-hec-token-0123"


@pytest.fixture
def history(admin_key: str) -> Iterator[Emulator]:
    events = generate_events(300, start=T0 - 3600, end=T0, seed=16)
    with Emulator(api_key=KEY, events=events) as emu:
        yield emu


def webhook_config(tmp_path: Path, emu: Emulator, hook: FakeWebhook, extra: str = "") -> Path:
    sinks = (
        f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.receiver.url}"\n{FAST}{extra}'
    )
    return write_config(tmp_path, config_text(emu.base_url, tmp_path, sinks=sinks))


def run(config: Path) -> app.RunOutcome:
    return app.run(load_config(config), once=True)


def covers_no_event(tmp_path: Path, sink: str, emu: Emulator) -> bool:
    """Whether the sink's cursor (if any) is still before every event and has seen none."""
    found = list((tmp_path / "state").glob(f"*/cursors/{sink}.json"))
    if not found:
        return True
    cursor = orjson.loads(found[0].read_bytes())
    first = min(e["effective_at"] for e in emu.events())
    return bool(cursor["high_water"] <= first and cursor["seen"] == {})


def dead_letters(tmp_path: Path, sink: str) -> list[dict[str, Any]]:
    path = tmp_path / "state" / "dead-letter" / f"{sink}.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def event_requests(hook: FakeWebhook) -> int:
    return sum(1 for r in hook.receiver.requests if r.method == "POST")


def test_an_event_a_webhook_always_fails_on_is_dead_lettered_and_the_rest_delivered_once(
    tmp_path: Path, history: Emulator
) -> None:
    """A 500 pinned on one event (its siblings went through) dead-letters it; nothing is re-sent."""
    poison = history.events()[123]["id"]
    hook = FakeWebhook()
    hook.fail_ids = {poison}
    with hook.receiver:
        config = webhook_config(tmp_path, history, hook)
        outcome = run(config)
        assert exit_code_of_run(outcome) == ExitCode.OK
        report = outcome.reports[0].sinks["hook"]
        assert (report.delivered, report.dead_lettered) == (299, 1)
        assert Counter(hook.ids()) == Counter(
            e["id"] for e in history.events() if e["id"] != poison
        )
        [letter] = dead_letters(tmp_path, "hook")
        assert letter["event_id"] == poison
        assert "failed on it every time" in letter["reason"] and "HTTP 500" in letter["reason"]
        requests = event_requests(hook)
        assert exit_code_of_run(run(config)) == ExitCode.OK
        assert event_requests(hook) == requests  # the second run sends nothing again


def test_an_event_elasticsearch_always_fails_on_is_dead_lettered_and_the_rest_delivered(
    tmp_path: Path, history: Emulator
) -> None:
    """A whole `_bulk` request answered 500 while it holds one event: halved until the 500
    follows that event alone; it is dead-lettered, the rest indexed, the sink not wedged."""
    poison = history.events()[77]["id"]
    with FakeElasticsearch() as es:
        es.fail_ids = {poison}
        sinks = f'[[sinks]]\ntype = "elasticsearch"\nname = "es"\nurl = "{es.url}"\n{FAST}'
        outcome = run(write_config(tmp_path, config_text(history.base_url, tmp_path, sinks=sinks)))
        assert exit_code_of_run(outcome) == ExitCode.OK
        assert set(es.created) == {e["id"] for e in history.events()} - {poison}
    [letter] = dead_letters(tmp_path, "es")
    assert letter["event_id"] == poison and "HTTP 500" in letter["reason"]


def test_a_webhook_failing_everything_with_500_is_an_outage_not_poison(
    tmp_path: Path, history: Emulator
) -> None:
    """500 to every piece: the sink fails after a few requests, cursor unchanged, nothing dead-lettered."""
    hook = FakeWebhook()
    hook.refuse_all = 500
    with hook.receiver:
        outcome = run(webhook_config(tmp_path, history, hook))
    assert exit_code_of_run(outcome) == ExitCode.SINK_FAILED
    assert outcome.reports[0].sinks["hook"].state == "failed"
    assert covers_no_event(tmp_path, "hook", history)
    assert dead_letters(tmp_path, "hook") == []
    assert event_requests(hook) <= 20


def refusing_everything(kind: str, tmp_path: Path) -> tuple[Any, Callable[[], str]]:
    """A receiver of `kind` that refuses every event with a 4xx, and its sink table (once started)."""
    if kind == "webhook":
        hook = FakeWebhook()
        hook.refuse_all = 400
        return hook.receiver, lambda: f'type = "webhook"\nurl = "{hook.receiver.url}"\n'
    if kind == "splunk_hec":
        (tmp_path / "hec-token").write_text(HEC_TOKEN)
        hec = FakeHec({HEC_TOKEN: Token()})
        hec.reject_ids = _AllIds()
        token = f'token_file = "{tmp_path}/hec-token"\n'
        return hec.receiver, lambda: f'type = "splunk_hec"\nurl = "{hec.receiver.url}"\n{token}'
    es = FakeElasticsearch()
    es._rejects = _AllRejected()  # every bulk item: 400 document_parsing_exception
    return es, lambda: f'type = "elasticsearch"\nurl = "{es.url}"\n'


class _AllIds(set[str]):
    def __contains__(self, _: object) -> bool:
        return True


class _AllRejected(dict[str, tuple[str, str]]):
    def get(self, *_: object) -> tuple[str, str]:
        return ("document_parsing_exception", "failed to parse field [actor_ip] of type [ip]")

    def __contains__(self, _: object) -> bool:
        return True

    def __getitem__(self, _: str) -> tuple[str, str]:
        return self.get()


@pytest.mark.parametrize("kind", ["webhook", "splunk_hec", "elasticsearch"])
def test_a_receiver_refusing_every_event_fails_the_sink_instead_of_dead_lettering(
    tmp_path: Path, history: Emulator, kind: str
) -> None:
    """Refusals no single event explains: exit 5, cursor unchanged, dead-letter file empty."""
    receiver, table = refusing_everything(kind, tmp_path)
    with receiver:
        sinks = f'[[sinks]]\nname = "target"\n{table()}{FAST}'
        config = write_config(tmp_path, config_text(history.base_url, tmp_path, sinks=sinks))
        outcome = run(config)
    assert exit_code_of_run(outcome) == ExitCode.SINK_FAILED
    report = outcome.reports[0].sinks["target"]
    assert report.state == "failed" and "not about single events" in (report.error or "")
    assert covers_no_event(tmp_path, "target", history)
    assert dead_letters(tmp_path, "target") == []


def test_a_window_cut_short_by_an_outage_is_resumed_without_resending_what_was_delivered(
    tmp_path: Path, history: Emulator
) -> None:
    """The requests answered 2xx before the receiver went down are not sent again next run."""
    hook = FakeWebhook()
    healthy = [hook.handle] * 5  # five requests of 20 events go through, then the receiver dies

    def down(_: Recorded) -> Reply:
        return Reply(503, b"down")

    hook.receiver.script(*healthy, *[down] * 50)
    with hook.receiver:
        config = webhook_config(tmp_path, history, hook, extra="batch_max_events = 20\n")
        first = run(config)
        assert exit_code_of_run(first) == ExitCode.SINK_FAILED
        assert len(hook.ids()) == 100
        assert first.reports[0].sinks["hook"].delivered == 100
        hook.receiver.script()  # nothing left scripted matters: let the rest through
        while hook.receiver.pending_script():
            hook.receiver._script.popleft()
        assert exit_code_of_run(run(config)) == ExitCode.OK
    assert Counter(hook.ids()) == Counter(e["id"] for e in history.events())  # each exactly once


@pytest.mark.parametrize("refusal", ["4xx", "5xx"])
def test_an_event_alone_in_its_window_is_blamed_once_a_later_window_goes_through(
    tmp_path: Path, admin_key: str, refusal: str
) -> None:
    """A refused event with no sibling in its window is sent with the next one, not left to wedge."""
    lone = generate_events(1, start=T0 - 4 * 3600, end=T0 - 4 * 3600 + 1, seed=1, id_prefix="lone-")
    later = generate_events(50, start=T0 - 3600, end=T0, seed=2)
    hook = FakeWebhook()
    if refusal == "4xx":
        hook.reject_ids = {lone[0]["id"]}
    else:
        hook.fail_ids = {lone[0]["id"]}
    with Emulator(api_key=KEY, events=[*lone, *later]) as emu, hook.receiver:
        sinks = f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.receiver.url}"\n{FAST}'
        text = config_text(emu.base_url, tmp_path, start_at=T0 - 4 * 3600 - 300, sinks=sinks)
        outcome = run(write_config(tmp_path, text))
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert [d["event_id"] for d in dead_letters(tmp_path, "hook")] == [lone[0]["id"]]
    assert Counter(hook.ids()) == Counter(e["id"] for e in later)


def test_a_receiver_refusing_everything_fails_the_sink_even_one_event_per_window(
    tmp_path: Path, admin_key: str
) -> None:
    """Sparse history, every event alone in its window, all refused: exit 5, nothing dead-lettered."""
    sparse = [
        *generate_events(1, start=T0 - 9 * 3600, end=T0 - 9 * 3600 + 1, seed=3, id_prefix="a-"),
        *generate_events(1, start=T0 - 5 * 3600, end=T0 - 5 * 3600 + 1, seed=4, id_prefix="b-"),
        *generate_events(1, start=T0 - 3600, end=T0 - 3600 + 1, seed=5, id_prefix="c-"),
    ]
    hook = FakeWebhook()
    hook.refuse_all = 400
    with Emulator(api_key=KEY, events=sparse) as emu, hook.receiver:
        sinks = f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{hook.receiver.url}"\n{FAST}'
        text = config_text(emu.base_url, tmp_path, start_at=T0 - 9 * 3600 - 300, sinks=sinks)
        outcome = run(write_config(tmp_path, text))
        assert exit_code_of_run(outcome) == ExitCode.SINK_FAILED
        assert covers_no_event(tmp_path, "hook", emu)
    assert dead_letters(tmp_path, "hook") == []
    assert event_requests(hook) <= 3 * in_a_row_limit(3)
