"""The code stays typed and lint-clean: mypy strict, ruff check and ruff format, as CI runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed in this environment (pip install -e '.[test]')")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_mypy_strict_is_clean() -> None:
    """shipper/ and sinks/ type-check under mypy --strict."""
    result = run(tool("mypy"), "--strict", "shipper", "sinks")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_check_is_clean() -> None:
    """ruff check reports nothing."""
    result = run(tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format_is_clean() -> None:
    """ruff format would change nothing."""
    result = run(tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]
