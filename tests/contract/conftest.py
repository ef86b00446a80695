"""Discovers every `harness_<type>.py` beside this file and parametrizes the contract suite."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper.testing.contract.harness import SinkHarness

HARNESSES = sorted(p.stem for p in Path(__file__).parent.glob("harness_*.py"))


@pytest.fixture(params=HARNESSES, ids=[h.removeprefix("harness_") for h in HARNESSES])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SinkHarness]:
    module = importlib.import_module(f"tests.contract.{request.param}")
    with module.make_harness(tmp_path) as made:
        yield made
