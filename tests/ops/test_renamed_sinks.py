"""A renamed sink: its old cursor is reported (start, `status`) and carried over by a command."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from shipper.emulator import Emulator
from shipper.pipeline.cursor_store import CursorStore, StateLock
from tests.conftest import config_text, write_config
from tests.core.test_cli import shipper

OLD, NEW = "archive", "siem-archive"


@pytest.fixture
def order() -> str:
    """One API order is enough here (conftest runs both)."""
    return "desc"


def sink_named(name: str, tmp_path: Path) -> str:
    return (
        f'[[sinks]]\ntype = "file"\nname = "{name}"\n'
        f'path = "{tmp_path}/out/audit.jsonl"\nformat = "raw"\n'
    )


def delivered_once_then_renamed(emulator: Emulator, tmp_path: Path) -> Path:
    """A run with sink `archive`, then the config edited to call that sink `siem-archive`."""
    config = write_config(tmp_path, config_text(emulator.base_url, tmp_path))
    first = shipper("run", "--once", "--config", str(config))
    assert first.returncode == 0, first.stderr
    text = config_text(emulator.base_url, tmp_path, sinks=sink_named(NEW, tmp_path))
    return write_config(tmp_path, text)


def store(tmp_path: Path) -> CursorStore:
    return CursorStore(tmp_path / "state", "default")


def output_ids(tmp_path: Path) -> list[str]:
    lines = (tmp_path / "out" / "audit.jsonl").read_bytes().splitlines()
    return [orjson.loads(line)["id"] for line in lines]


def test_a_cursor_that_matches_no_sink_is_reported_at_start_with_the_command_to_carry_it_over(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The start-up warning names the orphan cursor, its high_water and the fix."""
    config = delivered_once_then_renamed(emulator, tmp_path)
    high_water = store(tmp_path).load(OLD).high_water  # type: ignore[union-attr]
    result = shipper("run", "--once", "--config", str(config))
    warnings = [
        orjson.loads(line)
        for line in result.stderr.splitlines()
        if '"orphan_cursor"' in line and line.startswith("{")
    ]
    assert len(warnings) == 1, result.stderr
    assert warnings[0]["cursor"] == OLD and warnings[0]["high_water"] == high_water
    assert f"shipper cursor rename {OLD} " in warnings[0]["fix"]
    assert str(config) in warnings[0]["fix"]


def test_status_lists_a_cursor_that_matches_no_sink(emulator: Emulator, tmp_path: Path) -> None:
    """`status` (text and JSON) shows the orphan cursor, its high water and the command."""
    config = delivered_once_then_renamed(emulator, tmp_path)
    high_water = store(tmp_path).load(OLD).high_water  # type: ignore[union-attr]
    doc = orjson.loads(shipper("status", "--config", str(config), "--json").stdout)
    (orphan,) = doc["sources"][0]["orphan_cursors"]
    assert orphan["name"] == OLD and orphan["high_water"] == high_water
    assert orphan["cursor_file"] == str(store(tmp_path).path(OLD))
    text = shipper("status", "--config", str(config)).stdout
    assert re.search(rf"^orphan cursor {OLD} .*shipper cursor rename {OLD} ", text, re.M), text


def test_cursor_rename_carries_the_cursor_over_so_the_renamed_sink_repeats_nothing(
    emulator: Emulator, tmp_path: Path
) -> None:
    """After `cursor rename`, the renamed sink resumes where the old name stood: no duplicates."""
    config = delivered_once_then_renamed(emulator, tmp_path)
    before = store(tmp_path).load(OLD)
    moved = shipper("cursor", "rename", OLD, NEW, "--config", str(config))
    assert moved.returncode == 0, moved.stderr
    assert f"{OLD} -> {NEW}" in moved.stdout
    assert store(tmp_path).load(NEW) == before
    assert not store(tmp_path).path(OLD).exists()
    again = shipper("run", "--once", "--config", str(config))
    assert again.returncode == 0, again.stderr
    assert "orphan_cursor" not in again.stderr
    ids = output_ids(tmp_path)
    assert sorted(ids) == sorted(e["id"] for e in emulator.events())  # each exactly once


def test_cursor_rename_refuses_to_replace_an_existing_cursor_unless_forced(
    emulator: Emulator, tmp_path: Path
) -> None:
    """A renamed sink that already ran has a cursor of its own: replacing it needs --force."""
    config = delivered_once_then_renamed(emulator, tmp_path)
    assert shipper("run", "--once", "--config", str(config)).returncode == 0  # starts NEW afresh
    old = store(tmp_path).load(OLD)
    refused = shipper("cursor", "rename", OLD, NEW, "--config", str(config))
    assert refused.returncode == 2
    assert f"sink {NEW!r} already has a cursor" in refused.stderr
    assert "--force" in refused.stderr and "Traceback" not in refused.stderr
    assert store(tmp_path).path(OLD).exists()
    forced = shipper("cursor", "rename", OLD, NEW, "--config", str(config), "--force")
    assert forced.returncode == 0, forced.stderr
    assert store(tmp_path).load(NEW) == old
    assert not store(tmp_path).path(OLD).exists()


def test_cursor_rename_refuses_while_another_shipper_holds_the_state(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Beside a running follow-mode process (it holds the lock) the cursor is left alone: exit 6."""
    config = delivered_once_then_renamed(emulator, tmp_path)
    with StateLock(tmp_path / "state"):
        result = shipper("cursor", "rename", OLD, NEW, "--config", str(config))
    assert result.returncode == 6 and "another shipper" in result.stderr
    assert store(tmp_path).path(OLD).exists() and not store(tmp_path).path(NEW).exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (OLD, "typo", "no sink named 'typo'"),
        ("nothing", NEW, "no cursor named 'nothing'"),
        ("../../escape", NEW, "no cursor named '../../escape'"),
        (NEW, NEW, "still configured"),
    ],
)
def test_cursor_rename_explains_what_is_wrong_with_its_arguments(
    emulator: Emulator, tmp_path: Path, old: str, new: str, message: str
) -> None:
    """Unknown target sink, unknown or unsafe cursor name, a source still in use: exit 2, a reason."""
    config = delivered_once_then_renamed(emulator, tmp_path)
    result = shipper("cursor", "rename", old, new, "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
