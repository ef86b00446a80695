"""An API that indents its pages (as many JSON APIs do) still lands one event per line."""

from __future__ import annotations

from pathlib import Path

import orjson

from shipper.cli.exit_codes import exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.runtime import app
from tests.conftest import KEY, T0, config_text, write_config


def test_indented_pages_reach_a_jsonl_file_as_one_line_per_event(
    tmp_path: Path, admin_key: str
) -> None:
    """Every event of an indented listing is one compact line holding the API object, whole."""
    events = generate_events(500, start=T0 - 86_400, end=T0, seed=21)
    with Emulator(api_key=KEY, events=events, pretty=True) as emulator:
        config = load_config(write_config(tmp_path, config_text(emulator.base_url, tmp_path)))
        outcome = app.run(config, once=True)
    assert exit_code_of_run(outcome) == 0
    lines = (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    by_id = {e["id"]: e for e in events}
    assert len(lines) == len(by_id)
    for line in lines:
        assert b"\n  " not in line and line == orjson.dumps(orjson.loads(line))
        event = orjson.loads(line)
        assert event == by_id[event["id"]]
