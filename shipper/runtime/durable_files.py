"""Durable file writes: atomic replace and fsync'd appends, created private (0600).

Files are opened without following a symbolic link in the final component (O_NOFOLLOW): one
planted where shipper writes state, dead letters or output could otherwise redirect the write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from shipper.errors import ConfigError

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class SymlinkRefusedError(ConfigError, OSError):
    """A file shipper opens is a symbolic link: refused rather than followed.

    Also an OSError, so callers that turn I/O trouble into a sink failure handle it as such.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.key = str(path), None
        OSError.__init__(
            self,
            errno.ELOOP,
            f"{path} is a symbolic link; shipper does not follow links there (a planted one "
            "could redirect its writes): replace it with a regular file, or configure the "
            "real path",
            str(path),
        )

    def __str__(self) -> str:
        return str(self.strerror)


def ensure_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_nofollow(path: Path, flags: int) -> int:
    """`os.open` (creating 0600) that refuses a symbolic link as the final component."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP and path.is_symlink():
            raise SymlinkRefusedError(path) from None
        raise


def read_nofollow(path: Path) -> bytes:
    """The whole file, refusing a symbolic link as the final component."""
    fd = open_nofollow(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves either the old or the new file, never a mix."""
    ensure_dir(path.parent)
    if path.is_symlink():
        # rename() would replace the link, not write through it; refusing says what happened.
        raise SymlinkRefusedError(path)
    # mkstemp creates with O_CREAT | O_EXCL | O_NOFOLLOW and mode 0600: nothing can be planted.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def open_append(path: Path) -> int:
    """An O_APPEND descriptor, creating the file 0600 (and its directory) when needed."""
    ensure_dir(path.parent)
    existed = os.path.lexists(path)
    fd = open_nofollow(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    if not existed:
        fsync_dir(path.parent)
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
