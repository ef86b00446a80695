"""Cursors no configured sink owns (a renamed sink), and `shipper cursor rename` to carry one over.

A cursor file is keyed by the sink's name, so renaming a sink in the config silently starts a
new cursor at `start_at` (a flood of duplicates, or a gap when the old one was behind). Such
orphans are reported at start and in `status`; `cursor rename` moves one to the new name.
Likewise the state of a pipeline no source runs any more (an event type taken out of a
compliance source's `event_types`, a renamed source) is reported, never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from shipper.config.settings import ComplianceSourceSettings, Config, load_config
from shipper.errors import ConfigError, ShipperError
from shipper.model.event import rfc3339
from shipper.pipeline.cursor_store import CursorStore, StateLock

log = structlog.get_logger("shipper")


class CursorRenameError(ConfigError):
    """`cursor rename` was asked for something it must not do; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Orphan:
    source: str
    name: str
    path: Path
    high_water: int | None  # None when the file cannot be read

    def fix(self, config: Config) -> str:
        where = config.path or "FILE"
        return f"shipper cursor rename {self.name} NEW_SINK_NAME --config {where}"

    def as_dict(self, config: Config) -> dict[str, object]:
        return {
            "name": self.name,
            "cursor_file": str(self.path),
            "high_water": self.high_water,
            "high_water_at": None if self.high_water is None else rfc3339(self.high_water),
            "fix": self.fix(config),
        }


def orphans(config: Config, source: str) -> list[Orphan]:
    """Cursor files of `source` whose name matches no configured sink."""
    store = CursorStore(config.state.dir, source)
    configured = {s.name for s in config.sinks}
    found = []
    for name in store.sink_names():
        if name in configured:
            continue
        try:
            cursor = store.load(name)
        except ShipperError:  # unreadable or a symlink: still worth reporting, never fatal here
            cursor = None
        high_water = cursor.high_water if cursor is not None else None
        found.append(Orphan(source, name, store.path(name), high_water))
    return found


@dataclass(frozen=True, slots=True)
class OrphanState:
    """The state of a pipeline no configured source runs: an event type taken out of a
    compliance source's `event_types`, or a source renamed or removed. Its cursors are left
    alone (named again, the pipeline resumes from them); this says they are there."""

    name: str  # the pipeline's name: the state folder's
    path: Path
    high_water: int | None  # the newest of its cursors (None: none readable)
    table: str | None  # the compliance source it was an event type of, if still configured

    @property
    def meaning(self) -> str:
        if self.table is not None:
            event_type = self.name[len(self.table) + 1 :]
            return (
                f"event type {event_type} is no longer in the event_types of source "
                f"{self.table!r}: its cursors are kept and not moved; named again, it resumes "
                f"from them (what is older than the API's retention is gone by then); delete "
                f"{self.path} to start it again from start_at"
            )
        return (
            f"no configured source is named {self.name!r} (renamed or removed): its cursors are "
            f"not used, and a renamed source starts again from start_at; rename the folder "
            f"{self.path} to the source's new name to carry them over (shipper stopped)"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "state_dir": str(self.path),
            "high_water": self.high_water,
            "high_water_at": None if self.high_water is None else rfc3339(self.high_water),
            "meaning": self.meaning,
        }


def orphan_states(config: Config) -> list[OrphanState]:
    """State folders (with cursors) of pipelines no configured source runs."""
    running = {s.name for s in config.all_sources}
    tables = {s.name for s in config.configured_sources if isinstance(s, ComplianceSourceSettings)}
    try:
        folders = sorted(p for p in config.state.dir.iterdir() if (p / "cursors").is_dir())
    except FileNotFoundError:
        return []
    found = []
    for folder in folders:
        if folder.name in running:
            continue
        store = CursorStore(config.state.dir, folder.name)
        marks = []
        for sink in store.sink_names():
            try:
                cursor = store.load(sink)
            except ShipperError:  # unreadable: still worth reporting, never fatal here
                continue
            if cursor is not None:
                marks.append(cursor.high_water)
        table, dot, _ = folder.name.rpartition(".")
        found.append(
            OrphanState(
                folder.name,
                folder,
                max(marks, default=None),
                table if dot and table in tables else None,
            )
        )
    return found


def warn_orphans(config: Config) -> None:
    """One warning per orphan cursor: what it is, where it stood, the command that carries it."""
    for source in config.all_sources:
        for orphan in orphans(config, source.name):
            log.warning(
                "orphan_cursor",
                source=source.name,
                cursor=orphan.name,
                cursor_file=str(orphan.path),
                high_water=orphan.high_water,
                high_water_at=None if orphan.high_water is None else rfc3339(orphan.high_water),
                meaning="no configured sink has this name; a renamed sink starts again from "
                "source.start_at unless its cursor is carried over (stop shipper first; add "
                "--force if the renamed sink has run since)",
                fix=orphan.fix(config),
            )
    for state in orphan_states(config):
        log.warning(
            "orphan_state",
            pipeline=state.name,
            state_dir=str(state.path),
            high_water_at=None if state.high_water is None else rfc3339(state.high_water),
            meaning=state.meaning,
        )


def rename(config: Config, old: str, new: str, *, force: bool) -> int:
    """Carry sink `old`'s cursor (in every source) over to the configured sink `new`."""
    names = [s.name for s in config.sinks]
    if new not in names:
        raise CursorRenameError(
            f"no sink named {new!r} in {config.path} (configured: {', '.join(names)})"
        )
    if old in names:
        raise CursorRenameError(
            f"sink {old!r} is still configured in {config.path}: its cursor is in use; rename "
            "the sink in the config first"
        )
    with StateLock(config.state.dir):
        stores = [CursorStore(config.state.dir, s.name) for s in config.all_sources]
        moving = [store for store in stores if old in store.sink_names()]
        if not moving:
            known = sorted({o.name for s in config.all_sources for o in orphans(config, s.name)})
            raise CursorRenameError(
                f"no cursor named {old!r} under {config.state.dir} (cursors without a sink: "
                f"{', '.join(known) or 'none'})"
            )
        for store in moving:
            target = store.load(new)
            if target is not None and not force:
                raise CursorRenameError(
                    f"sink {new!r} already has a cursor ({store.path(new)}, high water "
                    f"{rfc3339(target.high_water)}); add --force to replace it with {old!r}'s"
                )
        for store in moving:
            cursor = store.move(old, new)
            print(
                f"{old} -> {new}: cursor carried over (high water {rfc3339(cursor.high_water)}), "
                f"{store.path(new)}"
            )
    return 0


def main(config_path: Path, old: str, new: str, *, force: bool) -> int:
    return rename(load_config(config_path), old, new, force=force)
