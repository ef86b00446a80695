"""JSON-lines file sink: append, fsync before acknowledging, torn tails repaired on open.

Files are reopened when rotated away (renamed or deleted: checked before each write) and on
SIGHUP in follow mode; at most MAX_OPEN_FILES stay open.

`path` may hold strftime placeholders (`out/audit-%Y-%m-%d.jsonl`); they are filled from each
event's `effective_at` (UTC), so a replay writes an event to the same daily file as the first
time. For a compliance record that is the end time of the log file it came from, not the
record's own time (`occurred_ms`): the records of one log file stay in one output file, and a
`raw` archive never parses a record to choose its file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import structlog
from pydantic import Field

from shipper.sink_api import (
    JSON_FORMATS,
    AuditEvent,
    Rejection,
    Renderer,
    SinkContext,
    SinkRetryableError,
    SinkSettings,
    open_append,
    renderer,
    reopen_generation,
    sink_logger,
    write_all,
)

log = structlog.get_logger("shipper.sinks.file")

# Descriptors one sink keeps open: an hourly template over weeks of history would otherwise
# hit EMFILE. The least recently written is fsync'd and closed first.
MAX_OPEN_FILES = 32
# strftime directives that change within a day; a template without them names one file per day.
_INTRADAY = re.compile(r"%[-_0^#]?[HIklpPMSsTRrXcf]")
_MAX_CACHED_PATHS = 4096


class FileSettings(SinkSettings):
    """`type = "file"`."""

    path: str = Field(description="Output file; strftime placeholders make per-day files.")
    allowed_formats: ClassVar[tuple[str, ...]] = ("raw", "normalized", "ecs", "ocsf", "cef")


def _still_at(fd: int, path: Path) -> bool:
    """Whether `path` still names the file `fd` is open on (what WatchedFileHandler checks)."""
    try:
        named = os.lstat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def repair_torn_tail(fd: int, path: Path) -> int:
    """Cut a partial last line (a crash mid-write) so the file is whole lines; returns bytes cut."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    chunk, end = 65536, size
    while end > 0:
        start = max(0, end - chunk)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    os.ftruncate(fd, keep)
    os.fsync(fd)
    log.warning("torn_line_repaired", path=str(path), bytes_removed=size - keep)
    return size - keep


class FileSink:
    def __init__(self, settings: FileSettings, context: SinkContext) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self._templated = "%" in settings.path
        self._fixed_path = Path(settings.path)
        # Paths are cached per day (or per second when the template names hours or minutes):
        # formatting a date and building a Path for every event would cost more than writing it.
        self._path_step = 1 if _INTRADAY.search(settings.path) else 86400
        self._paths: dict[int, Path] = {}
        self._render = _line_renderer(settings.format)
        self._fds: OrderedDict[Path, int] = OrderedDict()  # least recently written first
        self._dirty: set[Path] = set()
        self._generation = reopen_generation()

    def _path_for(self, event: AuditEvent) -> Path:
        if not self._templated:
            return self._fixed_path
        slot = event.effective_at // self._path_step
        path = self._paths.get(slot)
        if path is None:
            if len(self._paths) >= _MAX_CACHED_PATHS:
                self._paths.clear()
            when = dt.datetime.fromtimestamp(slot * self._path_step, dt.UTC)
            path = self._paths[slot] = Path(when.strftime(self.settings.path))
        return path

    def _fd(self, path: Path) -> int:
        """The descriptor to append to `path`, reopened if the file was renamed or deleted."""
        fd = self._fds.get(path)
        if fd is not None:
            if not _still_at(fd, path):  # rotated away (logrotate without copytruncate)
                self._log.info("file_reopened", path=str(path), reason="moved")
                self._retire(path)
            else:
                self._fds.move_to_end(path)
                return fd
        if len(self._fds) >= MAX_OPEN_FILES:
            self._retire(next(iter(self._fds)))
        try:
            fd = open_append(path)
            repair_torn_tail(fd, path)
        except OSError as exc:
            raise SinkRetryableError(self.name, f"cannot open {path}: {exc.strerror}") from None
        self._fds[path] = fd
        return fd

    def _retire(self, path: Path) -> None:
        """Close `path`'s descriptor, first fsyncing what it holds that no flush has covered."""
        fd = self._fds.pop(path)
        try:
            if path in self._dirty:
                self._sync(path, fd)
        finally:
            os.close(fd)

    def _sync(self, path: Path, fd: int) -> None:
        """fsync `path`; on failure its data may be lost, so the caller drops the descriptor."""
        try:
            if os.fstat(fd).st_nlink == 0:
                raise SinkRetryableError(
                    self.name,
                    f"{path} was deleted before its events were fsync'd; they will be "
                    "delivered again",
                )
            os.fsync(fd)
        except OSError as exc:
            raise SinkRetryableError(self.name, f"cannot fsync {path}: {exc.strerror}") from None
        finally:
            self._dirty.discard(path)

    def _reopen_if_requested(self) -> None:
        generation = reopen_generation()
        if generation != self._generation:
            self._log.info("file_reopened", files=len(self._fds), reason="SIGHUP")
            for path in list(self._fds):
                self._retire(path)
            self._generation = generation

    def open(self) -> None:
        if not self._templated:
            self._fd(self._fixed_path)

    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        self._reopen_if_requested()
        try:
            return self._send(batch)
        except (TypeError, ValueError):  # orjson cannot write an event (e.g. nested too deep)
            return self._send_renderable(batch)

    def _send_renderable(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        """Event by event: one the format cannot hold is refused (dead-lettered), not a stall."""
        kept, refused = [], []
        for event in batch:
            try:
                self._render(event)
            except (TypeError, ValueError) as exc:
                reason = f"cannot render as {self.settings.format}: {exc}"
                refused.append(Rejection(event, reason))
            else:
                kept.append(event)
        self._send(kept)
        return refused

    def _send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        render = self._render
        if not self._templated:
            lines = [render(event) for event in batch]
            if lines:
                self._append(self._fixed_path, b"\n".join(lines) + b"\n")
            return ()
        by_path: dict[Path, list[bytes]] = defaultdict(list)
        for event in batch:
            by_path[self._path_for(event)].append(render(event))
        for path, lines in by_path.items():
            self._append(path, b"\n".join(lines) + b"\n")
        return ()

    def _append(self, path: Path, data: bytes) -> None:
        fd = self._fd(path)
        before = os.fstat(fd).st_size
        self._dirty.add(path)
        try:
            write_all(fd, data)
        except OSError as exc:
            # Never leave a partial line behind a failed write: the next append would glue to it.
            os.ftruncate(fd, before)
            raise SinkRetryableError(self.name, f"cannot write {path}: {exc.strerror}") from None

    def flush(self) -> None:
        for path in list(self._dirty):
            fd = self._fds[path]
            try:
                self._sync(path, fd)
            except SinkRetryableError:
                del self._fds[path]  # never write to it again: the next write reopens `path`
                os.close(fd)
                raise

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        self._dirty.clear()

    def probe(self) -> str:
        directory = Path(dt.datetime.now(dt.UTC).strftime(self.settings.path)).parent
        directory.mkdir(parents=True, exist_ok=True)
        if not os.access(directory, os.W_OK):
            raise SinkRetryableError(self.name, f"directory {directory} is not writable")
        return f"writable: {directory}"


def _line_renderer(fmt: str) -> Renderer:
    """One line per event: JSON (which orjson never breaks across lines) or escaped text."""
    render = renderer(fmt)  # `raw` hands back the API object's bytes as held
    if fmt in JSON_FORMATS:
        return render
    return lambda event: render(event).replace(b"\n", b"\\n")


class FilePlugin:
    settings_model = FileSettings

    def create(self, settings: FileSettings, context: SinkContext) -> FileSink:
        return FileSink(settings, context)


plugin = FilePlugin()
