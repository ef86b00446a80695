"""A third-party sink package, installed the ordinary way, is found through its entry point and passes the shipped contract suite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from shipper.emulator import Emulator, generate_events
from tests.conftest import KEY, KEY_ENV, T0, config_text, write_config

PACKAGE = Path(__file__).resolve().parents[1] / "example_sink"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example package copied (a build writes into its tree) and pip-installed into a target
    directory, offline: (the copy, the directory to put on PYTHONPATH)."""
    root = tmp_path_factory.mktemp("example")
    source, site = root / "source", root / "site"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("conftest.py", "__pycache__"))
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    offline = ["--no-deps", "--no-index", "--no-build-isolation", "--target", str(site)]
    done = subprocess.run(
        [*pip, *offline, str(source)], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr
    return source, site


def with_path(site: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {KEY_ENV: KEY}
    return env | ({"PYTHONPATH": str(site)} if site is not None else {})


def run_once(config: Path, site: Path | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipper.cli.main", "run", "--once", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=180,
        env=with_path(site),
    )


def test_the_example_sink_passes_the_shipped_contract_suite(installed: tuple[Path, Path]) -> None:
    """The example package's own test file, a subclass of SinkContractSuite, runs every contract test and passes."""
    source, site = installed
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
        env=with_path(site),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # Every test of the suite ran and passed (a file cannot refuse one event: it must take all).
    assert "7 passed" in done.stdout and "skipped" not in done.stdout, done.stdout


def test_a_config_naming_the_example_type_ships_through_it(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    """`type = "example"` resolves through the `shipper.sinks` entry point and `run --once` delivers every event with it."""
    _, site = installed
    out = tmp_path / "out" / "example.jsonl"
    sinks = f'[[sinks]]\ntype = "example"\nname = "third-party"\npath = "{out}"\n'
    events = generate_events(300, start=T0 - 86400, end=T0, seed=17)
    with Emulator(api_key=KEY, events=events) as emu:
        config = write_config(tmp_path, config_text(emu.base_url, tmp_path, sinks=sinks))
        done = run_once(config, site)
    assert done.returncode == 0, done.stderr
    shipped = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    assert sorted(shipped) == sorted(e["id"] for e in events)


def test_without_the_package_the_type_is_unknown(tmp_path: Path) -> None:
    """Nothing but the installed entry point makes `example` a sink type: without it the config is refused by name."""
    sinks = f'[[sinks]]\ntype = "example"\nname = "third-party"\npath = "{tmp_path}/x.jsonl"\n'
    config = write_config(tmp_path, config_text("http://127.0.0.1:9", tmp_path, sinks=sinks))
    done = run_once(config, None)
    assert done.returncode != 0
    assert "unknown sink type 'example'" in done.stderr
