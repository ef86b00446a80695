"""The commit rule: dead letters are durable before the cursor moves past them, and only then saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.model.event import AuditEvent
from shipper.pipeline.commit import Committer
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.deadletter import default_path
from shipper.pipeline.sink import Progress, Rejection

LOOKBACK = 600


def event(i: int, at: int) -> AuditEvent:
    return AuditEvent.from_api(
        {
            "id": f"audit_log-{i}",
            "object": "organization.audit_log",
            "type": "x",
            "effective_at": at,
        }
    )


def committer(tmp_path: Path, dead_letters: Path | None = None) -> Committer:
    store = CursorStore(tmp_path / "state", "default")
    path = dead_letters or default_path(tmp_path / "state", "out")
    return Committer("out", store, path, LOOKBACK, clock=lambda: 1_700_000_000.0)


def test_a_settled_window_moves_and_saves_the_cursor_with_its_dead_letters_written(
    tmp_path: Path,
) -> None:
    """After a window: the refused event is in the dead-letter file and the saved cursor is past it."""
    commit = committer(tmp_path)
    sent = [event(1, 1000), event(2, 1001)]
    moved = commit.window(Cursor(high_water=900), sent, [Rejection(sent[1], "bad")], 1100)
    assert moved.high_water == 1100
    assert commit.store.load("out") == moved
    assert b"audit_log-2" in commit.dead_letter_path.read_bytes()


def test_the_cursor_is_not_saved_when_the_dead_letters_cannot_be_written(tmp_path: Path) -> None:
    """A refused event that is not durably dead-lettered is not skipped: the cursor stays put."""
    blocked = tmp_path / "dead"
    blocked.mkdir()  # a directory where the dead-letter file should be: the append fails
    commit = committer(tmp_path, dead_letters=blocked)
    sent = [event(1, 1000)]
    with pytest.raises(OSError):
        commit.window(Cursor(high_water=900), sent, [Rejection(sent[0], "bad")], 1100)
    assert commit.store.load("out") is None


def test_part_of_a_window_is_recorded_without_moving_the_high_water(tmp_path: Path) -> None:
    """A send that failed midway keeps what it settled: those ids are seen, the high water stays."""
    commit = committer(tmp_path)
    delivered, refused = event(1, 1000), event(2, 1001)
    progress = Progress(delivered=[delivered], rejected=[Rejection(refused, "bad")])
    moved = commit.part(Cursor(high_water=1000), progress)
    assert moved.high_water == 1000
    assert set(moved.seen) == {"audit_log-1", "audit_log-2"}
    assert commit.store.load("out") == moved
