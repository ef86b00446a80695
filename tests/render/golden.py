"""Golden files: `UPDATE_GOLDEN=1 pytest tests/render` rewrites them; review the diff."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

GOLDEN_DIR = Path(__file__).parent / "golden"


def as_text(doc: Any) -> str:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"


def check(name: str, text: str) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run the tests once with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"
