"""Dead letters end to end: a refused event is kept with its reason, listed, replayed, purged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.cli.main import main
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.pipeline.cursor_store import StateLock
from shipper.runtime import app
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from tests.conftest import KEY, T0, config_text, write_config

Setup = tuple[Emulator, FakeElasticsearch, Path]


@pytest.fixture
def setup(tmp_path: Path, admin_key: str) -> Iterator[Setup]:
    events = generate_events(40, start=T0 - 3600, end=T0, seed=5)
    with Emulator(api_key=KEY, events=events) as emu, FakeElasticsearch() as es:
        sinks = f'[[sinks]]\ntype = "elasticsearch"\nname = "es"\nurl = "{es.url}"\nformat = "normalized"\nretry_max_attempts = 2\n'
        config = write_config(tmp_path, config_text(emu.base_url, tmp_path, sinks=sinks))
        yield emu, es, config


def test_refused_event_is_dead_lettered_listed_and_replayed(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mapping refusal dead-letters exactly that event; after the fix, `dlq replay` delivers it and empties the file."""
    emu, es, config_path = setup
    victim = emu.events()[7]["id"]
    es.reject(victim)
    outcome = app.run(load_config(config_path), once=True)
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert outcome.reports[0].sinks["es"].dead_lettered == 1
    assert victim not in es.docs() and len(es.docs()) == 39
    dead = config_path.parent / "state" / "dead-letter" / "es.jsonl"
    record = orjson.loads(dead.read_bytes())
    assert (
        record["event_id"] == victim
        and record["sink"] == "es"
        and "document_parsing_exception" in record["reason"]
    )
    assert record["event"]["id"] == victim and record["time"].endswith("Z")

    assert main(["dlq", "list", "--config", str(config_path), "--sink", "es"]) == 0
    assert victim in capsys.readouterr().out

    assert (
        main(["dlq", "replay", "--config", str(config_path), "--sink", "es"]) == 5
    )  # still refused
    assert orjson.loads(dead.read_bytes())["event_id"] == victim
    es.accept(victim)
    assert main(["dlq", "replay", "--config", str(config_path), "--sink", "es"]) == 0
    assert victim in es.docs() and dead.read_bytes() == b""


def test_purge_needs_yes(setup: Setup) -> None:
    """`dlq purge` deletes nothing without --yes, and the file with it."""
    emu, es, config_path = setup
    es.reject(emu.events()[0]["id"])
    app.run(load_config(config_path), once=True)
    dead = config_path.parent / "state" / "dead-letter" / "es.jsonl"
    assert main(["dlq", "purge", "--config", str(config_path), "--sink", "es"]) == 2
    assert dead.exists()
    assert main(["dlq", "purge", "--config", str(config_path), "--sink", "es", "--yes"]) == 0
    assert not dead.exists()


def test_unknown_sink_is_a_config_error(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    """Naming a sink that is not configured exits 2 and lists the configured ones."""
    _, _, config_path = setup
    assert main(["dlq", "list", "--config", str(config_path), "--sink", "nope"]) == 2
    assert "configured: es" in capsys.readouterr().err


def test_replay_beside_a_running_shipper_exits_6_and_says_to_stop_it(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """While a process holds the state lock, replay and purge change nothing and name the way out."""
    emu, es, config_path = setup
    es.reject(emu.events()[3]["id"])
    app.run(load_config(config_path), once=True)
    dead = config_path.parent / "state" / "dead-letter" / "es.jsonl"
    before = dead.read_bytes()
    es.accept(emu.events()[3]["id"])
    with StateLock(config_path.parent / "state"):  # a follow-mode process would hold it
        assert main(["dlq", "replay", "--config", str(config_path), "--sink", "es"]) == 6
        assert "stop the follow-mode process" in capsys.readouterr().err
        assert main(["dlq", "purge", "--config", str(config_path), "--sink", "es", "--yes"]) == 6
    assert dead.read_bytes() == before
