"""The README stays true: its commands, exit codes and config reference match the code."""

from __future__ import annotations

import re
from pathlib import Path

from docgen.config_reference import BEGIN, END, reference
from shipper.cli.main import EXIT_CODES_HELP

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_config_reference_is_generated_from_the_code() -> None:
    """The README's config reference equals `python -m docgen.config_reference` output."""
    start, stop = README.index(BEGIN), README.index(END) + len(END)
    assert README[start:stop] == reference()


def test_exit_codes_match_the_cli_help() -> None:
    """Every exit code in `shipper --help` is documented with the same meaning in the README."""
    for code, meaning in re.findall(r"^  (\d)  (.+)$", EXIT_CODES_HELP, re.M):
        assert f"| {code} | {meaning} |" in README


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run runs exactly the test command the README gives."""
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.replace(" -q", "") in ci.replace(" -q", "")


def test_mapping_table_and_samples_are_generated_from_the_data() -> None:
    """The README's mapping table and format samples equal `python -m docgen.mapping_reference` output."""
    from docgen.mapping_reference import document

    start = README.index("<!-- mapping:begin")
    body = README[README.index("\n", start) + 1 : README.index("<!-- mapping:end -->")]
    assert body.strip() == document().strip()
