"""`shipper init`: write the commented starter config (the same file as deploy/shipper.example.toml)."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

from shipper.errors import ConfigError


def starter_config() -> str:
    return files("shipper").joinpath("data/shipper.example.toml").read_text(encoding="utf-8")


def write_starter(path: Path, *, force: bool) -> int:
    """Create `path` (0600) with the starter config; refuse to overwrite unless `force`."""
    if path.exists() and not force:
        raise ConfigError("already exists; pass --force to overwrite it", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(starter_config())
    print(f"wrote {path}: edit it, then run `shipper check --config {path}`")
    return 0
