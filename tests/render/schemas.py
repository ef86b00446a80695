"""Where the pinned ECS and OCSF schemas and the event-type catalog live: `tests/data/`.

They are subsets of the official sources, vendored with their licences and upstream versions
(`tests/data/README.md`; rebuilt by `tests/data/vendor.py`), so a fresh clone runs every test.
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
ECS_DIR = DATA / "ecs"
OCSF_DIR = DATA / "ocsf"
EVENT_TYPES = DATA / "event-types.json"


def require(path: Path) -> Path:
    """The path; a missing one is a broken checkout, said plainly rather than skipped."""
    if not path.exists():
        raise FileNotFoundError(f"pinned schema data missing: {path} (see tests/data/README.md)")
    return path
