"""Layering, read from the syntax tree (function-level and TYPE_CHECKING imports included).

- `shipper` never imports `sinks`: the pipeline finds sinks through entry points only.
- A sink imports from `shipper` only the sink author's API, `shipper.sink_api`.
- `bench/` never imports `tests/`: what both need ships in the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str) -> Iterator[str]:
    """Every module an import statement anywhere in `source` names (`from a import b` gives a.b too)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def offenders(folder: str, forbidden: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """`file: module` for each import under `folder` of `forbidden` (or below it) not `allowed`."""
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in imported_modules(path.read_text()):
            inside = module == forbidden or module.startswith(forbidden + ".")
            if inside and not any(module == a or module.startswith(a + ".") for a in allowed):
                found.append(f"{path.relative_to(ROOT)}: {module}")
    return found


def test_shipper_never_imports_sinks() -> None:
    """No module of the shipper package imports the sinks package, at any level."""
    assert offenders("shipper", "sinks") == []


def test_sinks_import_only_the_sink_api_from_shipper() -> None:
    """Built-in sinks use the same public API a third party's sink does."""
    assert offenders("sinks", "shipper", allowed=("shipper.sink_api",)) == []


def test_the_example_third_party_sink_imports_only_the_sink_api() -> None:
    """The example sink package (tests/example_sink) is held to the rule it demonstrates."""
    package = "tests/example_sink/shipper_example_sink"
    assert offenders(package, "shipper", allowed=("shipper.sink_api",)) == []


def test_bench_never_imports_tests() -> None:
    """The benchmarks use what the package ships (the emulator, shipper.testing), not the tests."""
    assert offenders("bench", "tests") == []


def test_the_checker_sees_an_import_hidden_in_a_function() -> None:
    """A function-level import of an internal module is an import too."""
    source = "def send():\n    from shipper.runtime.stopping import pause\n    pause(1)\n"
    modules = set(imported_modules(source))
    assert "shipper.runtime.stopping" in modules
    assert "shipper.runtime.stopping.pause" in modules


def test_the_checker_sees_a_type_checking_import() -> None:
    """Imports under `if TYPE_CHECKING:` count: they couple the code just the same."""
    source = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import shipper.pipeline.sink\n"
    )
    assert "shipper.pipeline.sink" in set(imported_modules(source))
