"""The README stays short and true: its two commands, its size, and links that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
README_LIMIT = 15_000  # bytes: what it is, the two commands, a quick start; the rest is in docs/


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs exactly the test command the README gives."""
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace(" -q", "") in ci.replace(" -q", "")


def test_readme_gives_the_demo_command() -> None:
    """The README's first command runs the demo from a fresh clone."""
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    assert commands[0].endswith(".venv/bin/shipper demo")


def test_readme_is_short() -> None:
    """The README stays under 15,000 bytes; reference material lives in the docs site."""
    assert len(README.encode()) < README_LIMIT


def test_readme_links_lead_to_files_in_the_repository() -> None:
    """Every relative link in the README names a file that exists (the site build checks docs/)."""
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    relative = [t for t in targets if "://" not in t]
    assert relative, "the README links to the documentation"
    assert [t for t in relative if not (ROOT / t).is_file()] == []
