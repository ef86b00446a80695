"""deploy/sentinel/ declares exactly the columns each profile of the Sentinel sink sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipper.render.basic import render_normalized
from shipper.testing.contract.events import events
from shipper.testing.receivers.sentinel import OPENAI_COLUMNS
from sinks.sentinel.records import generic, openai_solution
from sinks.sentinel.settings import PROFILES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "sentinel"
SHAPES = {"openai_solution": openai_solution("shipper"), "generic": generic(render_normalized)}
TEMPLATES = {"openai_solution": "openai-solution.json", "generic": "generic.json"}


def dcr(template: str) -> dict[str, Any]:
    resources = json.loads((DEPLOY / template).read_text())["resources"]
    (rule,) = [r for r in resources if r["type"] == "Microsoft.Insights/dataCollectionRules"]
    properties: dict[str, Any] = rule["properties"]
    return properties


@pytest.mark.parametrize("profile", sorted(TEMPLATES))
def test_template_stream_declares_every_key_the_profile_sends(profile: str) -> None:
    """The DCR's input stream is the profile's default stream, with exactly the keys of its records."""
    properties = dcr(TEMPLATES[profile])
    stream = PROFILES[profile][0]
    columns = {c["name"] for c in properties["streamDeclarations"][stream]["columns"]}
    record = SHAPES[profile](events(1)[0])
    assert columns == set(record)
    assert properties["dataFlows"][0]["streams"] == [stream]


def test_openai_template_matches_microsofts_solution_stream() -> None:
    """The openai_solution stream has the column names and types of Microsoft's OpenAI DCR."""
    declared = dcr("openai-solution.json")["streamDeclarations"]["Custom-OpenAIAuditLogs_CL"]
    assert {c["name"]: c["type"] for c in declared["columns"]} == OPENAI_COLUMNS
