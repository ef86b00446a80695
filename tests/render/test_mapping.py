"""The mapping table: complete, valid per ECS 9.4 and OCSF 1.8.0, and strict about its own shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipper.render.mapping import MappingTableError, PayloadPath, mapping_for, parse_table, table
from shipper.render.mapping import table_document as document
from tests.render import ecs_validator, ocsf_validator
from tests.render.schemas import EVENT_TYPES, require

ROOT = Path(__file__).resolve().parents[2]
PINNED = ROOT / "shipper" / "data" / "event_types.json"


def pinned_types() -> list[str]:
    types: list[str] = json.loads(PINNED.read_text())["event_types"]
    return types


def test_every_documented_type_has_a_row() -> None:
    """All 145 types of the pinned event-type list have a row."""
    assert len(pinned_types()) == 145
    assert set(pinned_types()) <= set(document()["types"])


def test_no_row_for_a_type_that_does_not_exist() -> None:
    """`types` holds only documented types; anything else must sit in the documented `extras`."""
    assert set(document()["types"]) == set(pinned_types())
    assert set(document()["extras"]).isdisjoint(pinned_types())


def test_pinned_list_matches_the_spec_catalog() -> None:
    """shipper/data/event_types.json is the same list as the catalog pinned from the spec."""
    shared = json.loads(require(EVENT_TYPES).read_text())["event_types"]
    assert pinned_types() == shared


def _all_mappings() -> list[Any]:
    return [*table().rows.values(), mapping_for("thing.created"), mapping_for("thing.frobbed")]


def test_ecs_categories_and_types_are_allowed_and_paired() -> None:
    """Every row's event.category/type values are ECS 9.4 values and an allowed pairing."""
    cat = ecs_validator.categorization()
    for m in _all_mappings():
        allowed = {t for c in m.ecs_category for t in cat["category_to_allowed_types"][c]}
        assert set(m.ecs_category) <= set(cat["event.category"]["allowed_values"]), m.event_type
        assert set(m.ecs_type) <= allowed, (m.event_type, m.ecs_category, m.ecs_type)


def test_every_default_verb_pairs_with_the_default_category() -> None:
    """The default rule's verb table only yields event.type values its category allows."""
    cat = ecs_validator.categorization()
    default_category = document()["default"]["ecs"]["category"]
    allowed = {t for c in default_category for t in cat["category_to_allowed_types"][c]}
    for verb in document()["verbs"].values():
        assert verb["ecs_type"] in allowed


def test_ocsf_classes_and_activities_exist() -> None:
    """Every row's OCSF class is a 1.8.0 class and its activity id is in that class's enum."""
    sch = ocsf_validator.schema()
    for m in _all_mappings():
        name = sch.class_by_uid[m.ocsf_class_uid]
        attrs, _ = sch.event_class(name)
        enum = sch.definition("activity_id", attrs["activity_id"])["enum"]
        assert str(m.ocsf_activity_id) in enum, m.event_type
        if m.ocsf_activity_id != 99:
            assert enum[str(m.ocsf_activity_id)]["caption"] == m.ocsf_activity_name


def test_group_principal_rows_share_activity_ids_with_group_management() -> None:
    """Privilege rows can move to Group Management (3006) because 1/2 mean the same there."""
    sch = ocsf_validator.schema()
    attrs, _ = sch.event_class("group_management")
    enum = sch.definition("activity_id", attrs["activity_id"])["enum"]
    for m in table().rows.values():
        if m.principal is not None:
            assert m.ocsf_class_uid == 3005
            assert enum[str(m.ocsf_activity_id)]["caption"] == m.ocsf_activity_name


def test_failures_and_authentication() -> None:
    """`*.failed` types fail; login/logout are ECS authentication start/end and OCSF 3002."""
    for t, m in table().rows.items():
        assert (m.outcome == "failure") == t.endswith(".failed")
        if t.startswith(("login.", "logout.")):
            assert "authentication" in m.ecs_category and m.ocsf_class_uid == 3002
            assert m.ecs_type == (("start",) if t.startswith("login.") else ("end",))


def test_iam_changes_are_iam() -> None:
    """Users, groups, roles, invites, service accounts and API keys are ECS `iam`."""
    iam_prefixes = ("user.", "group.", "role.", "invite.", "service_account.", "api_key.")
    for t, m in table().rows.items():
        if t.startswith(iam_prefixes):
            assert m.ecs_category == ("iam",), t


def test_unknown_type_uses_the_default_rule() -> None:
    """An unknown type gets its action from the last segment and a target kind from the rest."""
    m = mapping_for("widget.part.frobbed")
    assert (m.known, m.action, m.outcome) == (False, "frobbed", "success")
    assert m.target is not None and m.target.kind == "widget_part"
    assert (m.ecs_category, m.ecs_type) == (("configuration",), ("info",))
    assert mapping_for("widget.failed").outcome == "failure"
    assert mapping_for("widget.deleted").ocsf_activity_name == "Delete"
    assert mapping_for("nodots").action == "nodots"


def test_known_type_is_the_same_object_every_time() -> None:
    """The table is loaded once: lookups return the same row object."""
    assert mapping_for("login.failed") is mapping_for("login.failed")
    assert table() is table()


def test_payload_paths_reach_strings_in_lists_and_ignore_other_shapes() -> None:
    """`configs[].id` collects every id; wrong shapes yield nothing instead of raising."""
    path = PayloadPath.parse("configs[].id")
    assert path.strings({"configs": [{"id": "a"}, {"id": 3}, "x", {"id": "b"}]}) == ("a", "b")
    assert path.strings({"configs": "nope"}) == ()
    assert path.strings(None) == ()
    with pytest.raises(MappingTableError):
        PayloadPath.parse("a..b")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"severity": "apocalyptic"}, "severity"),
        ({"outcome": "maybe"}, "outcome"),
        ({"colour": "red"}, "unknown keys"),
        ({"ocsf": {"class_uid": 9999, "activity_id": 1, "activity_name": "x"}}, "class_uid"),
        ({"ecs": {"category": [], "type": ["info"]}}, "ecs.category"),
        ({"target": {"kind": "x", "id": "a[]b"}}, "bad segment"),
    ],
)
def test_a_malformed_row_is_named(change: dict[str, Any], message: str) -> None:
    """A broken table fails at load with the row's type and the problem."""
    doc = document()
    doc["types"]["api_key.created"] = {**doc["types"]["api_key.created"], **change}
    with pytest.raises(MappingTableError, match=rf"api_key\.created.*{message}"):
        parse_table(doc)


def test_docs_lists_every_row_and_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m docgen.mapping_reference` prints one table row per type, the default and samples."""
    from docgen import mapping_reference as docs

    assert docs.main([]) == 0
    out = capsys.readouterr().out
    for event_type in table().rows:
        assert f"| `{event_type}` |" in out
    assert "*any other type*" in out
    for title in ("ECS (`ecs`)", "OCSF (`ocsf`)", "CEF (`cef`)"):
        assert title in out
    assert docs.main(["--bogus"]) == 2
