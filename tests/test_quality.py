"""The code stays typed and lint-clean: mypy strict, ruff check and ruff format, as CI runs them."""

from __future__ import annotations

import ast
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
    """shipper/, sinks/, docgen/, tests/ and bench/ type-check under mypy --strict (pyproject's files)."""
    result = run(tool("mypy"), "--strict")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_check_is_clean() -> None:
    """ruff check reports nothing."""
    result = run(tool("ruff"), "check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff_format_is_clean() -> None:
    """ruff format would change nothing."""
    result = run(tool("ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_every_test_says_its_promise_in_a_docstring() -> None:
    """Each test function has a one-line docstring saying what it promises."""
    missing = [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"
        for path in sorted((ROOT / "tests").rglob("test_*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
        and ast.get_docstring(node) is None
    ]
    assert missing == []
