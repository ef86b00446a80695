"""Where the pinned ECS and OCSF schemas live (shared/, beside the repo), or a clean skip."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
ECS_DIR = SHARED / "schemas" / "ecs"
OCSF_DIR = SHARED / "schemas" / "ocsf"
EVENT_TYPES = SHARED / "openai-audit-logs" / "event-types.json"


def require(path: Path) -> Path:
    """The path, or skip the test: the schemas are shared data beside the repo, not in it."""
    if not path.exists():
        pytest.skip(f"schema data not found at {path.resolve()} (shared/ is beside the repo)")
    return path
