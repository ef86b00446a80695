"""The documentation site builds in strict mode, and its generated pages match the code."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from docgen import config_reference, mapping_reference
from shipper.cli.main import EXIT_CODES_HELP

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: no broken link, anchor, nav entry or include."""
    # Not -q: quiet mode hides the warnings that strict mode counts, and the build then passes.
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()


def test_config_reference_page_is_generated_from_the_code() -> None:
    """docs/reference/configuration.md equals `python -m docgen.config_reference` output."""
    page = (ROOT / config_reference.PAGE).read_text()
    assert page == config_reference.reference(), (
        "stale: python -m docgen.config_reference > docs/reference/configuration.md"
    )


def test_mapping_page_is_generated_from_the_data() -> None:
    """docs/reference/mappings.md equals `python -m docgen.mapping_reference` output."""
    page = (ROOT / mapping_reference.PAGE).read_text()
    assert page == mapping_reference.document(), (
        "stale: python -m docgen.mapping_reference > docs/reference/mappings.md"
    )


def test_exit_codes_match_the_cli_help() -> None:
    """Every exit code in `shipper --help` is documented with the same meaning in Operations."""
    operations = (DOCS / "operations.md").read_text()
    for code, meaning in re.findall(r"^  (\d)  (.+)$", EXIT_CODES_HELP, re.M):
        assert f"| {code} | {meaning} |" in operations
