"""On-disk state: one cursor file per sink, written atomically, and a lock per state directory.

Layout: `<state.dir>/<source name>/cursors/<sink name>.json`, `<state.dir>/shipper.lock`.
State files hold ids and times only: never a secret.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Any

import orjson

from shipper.errors import LockHeldError, StateDamagedError
from shipper.model.event import rfc3339
from shipper.pipeline.cursor import Cursor
from shipper.runtime.durable_files import (
    SymlinkRefusedError,
    atomic_write,
    ensure_dir,
    fsync_dir,
    open_nofollow,
    read_nofollow,
)

STATE_VERSION = 1


class StateCorruptError(StateDamagedError):
    """A cursor file exists but cannot be read; we refuse to guess where the sink stands."""


class StateLock:
    """An exclusive, non-blocking `flock` on the state directory, released when the process ends.

    The kernel drops the lock when the holder dies (even by SIGKILL), so there is never a stale
    lock to clean up by hand.
    """

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "shipper.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        ensure_dir(self.path.parent)
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise LockHeldError(
                f"another shipper (pid {holder}) is using the state directory {self.path.parent}; "
                "two runs must never share one (overlapping cron jobs?)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class CursorStore:
    """Cursors of one source's sinks."""

    def __init__(self, state_dir: Path, source_name: str) -> None:
        self.dir = state_dir / source_name / "cursors"

    def path(self, sink: str) -> Path:
        return self.dir / f"{sink}.json"

    def sink_names(self) -> list[str]:
        """The sinks that have a cursor file here (configured or not), sorted."""
        try:
            return sorted(p.stem for p in self.dir.glob("*.json") if not p.name.startswith("."))
        except FileNotFoundError:
            return []

    def move(self, old: str, new: str) -> Cursor:
        """Carry `old`'s cursor over to `new` (replacing `new`'s), then delete `old`'s file.

        `new` appears atomically; a crash before the delete leaves `old` too (moving it again
        with force completes the move).
        """
        cursor = self.load(old)
        if cursor is None:
            raise FileNotFoundError(errno.ENOENT, "no cursor file", str(self.path(old)))
        self.save(new, cursor)
        self.path(old).unlink()
        fsync_dir(self.dir)
        return cursor

    def load(self, sink: str) -> Cursor | None:
        path = self.path(sink)
        try:
            doc = orjson.loads(read_nofollow(path))
            if int(doc.get("version", 1)) > STATE_VERSION:
                raise StateCorruptError(
                    f"cursor file {path} was written by a newer shipper (state version "
                    f"{doc['version']}); run that version, or restore a backup"
                )
            return Cursor(high_water=int(doc["high_water"]), seen=dict(doc["seen"]))
        except FileNotFoundError:
            return None
        except SymlinkRefusedError:
            raise
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StateCorruptError(
                f"cursor file {path} is unreadable ({exc}); restore it from a backup, or delete it "
                "to start that sink again from source.start_at"
            ) from None

    def save(self, sink: str, cursor: Cursor) -> None:
        doc: dict[str, Any] = {
            "version": STATE_VERSION,
            "sink": sink,
            "high_water": cursor.high_water,
            "high_water_at": rfc3339(cursor.high_water),
            "updated_at": rfc3339(int(time.time())),
            "seen": cursor.seen,
        }
        atomic_write(self.path(sink), orjson.dumps(doc, option=orjson.OPT_INDENT_2))
