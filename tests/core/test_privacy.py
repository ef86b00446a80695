"""Privacy rules: path syntax, drop and hash on source objects, the view a sink gets, config errors."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shipper.config.settings import parse_config, read_every_secret
from shipper.errors import ConfigError
from shipper.model.event import AuditEvent, ComplianceRecord
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore
from shipper.pipeline.delivery import SinkWorker, Window
from shipper.pipeline.privacy import (
    ANY,
    MAX_SEGMENTS,
    PrivacySettings,
    Rule,
    SinkView,
    edit,
    hasher,
    parse_path,
    sink_view,
)
from shipper.pipeline.sink import SinkContext
from shipper.secrets import MASK, redact
from sinks.file.sink import FileSettings, plugin
from tests.render.compliance_samples import SAMPLES

KEY = SecretStr("privacy-unit-key-5e6f7a8b9c0d")
HMAC = hasher(KEY)
PLAIN = hasher(None)


def rules(drop: tuple[str, ...] = (), hash: tuple[str, ...] = ()) -> list[Rule]:
    return [(parse_path(p), "drop") for p in drop] + [(parse_path(p), "hash") for p in hash]


def view(drop: tuple[str, ...] = (), hash: tuple[str, ...] = ()) -> SinkView:
    made = sink_view([], PrivacySettings(drop=list(drop), hash=list(hash)), KEY)
    assert made is not None
    return made


# --- paths ----------------------------------------------------------------------------------


def test_a_path_is_keys_separated_by_dots_with_star_for_any() -> None:
    """`a.*.b` reads as the key a, any key or element, the key b."""
    assert parse_path("a.*.b") == ("a", ANY, "b")
    assert parse_path("actor.user_email") == ("actor", "user_email")


def test_escapes_write_a_literal_dot_star_or_backslash() -> None:
    r"""`api_key\.created.id` names the key `api_key.created`; `\*` is a key named `*`."""
    assert parse_path(r"api_key\.created.id") == ("api_key.created", "id")
    assert parse_path(r"\*") == ("*",)
    assert parse_path(r"a\\b") == ("a\\b",)


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("", "empty segment"),
        ("a..b", "empty segment"),
        ("a.", "empty segment"),
        (".a", "empty segment"),
        ("a*", "whole segment"),
        ("a.b*c", "whole segment"),
        ("a\\x", "backslash escapes"),
        ("a\\", "backslash escapes"),
        (".".join(["k"] * (MAX_SEGMENTS + 1)), "more than"),
    ],
)
def test_a_malformed_path_is_refused_saying_why(path: str, complaint: str) -> None:
    """Empty segments, a partial star, a stray backslash or an overlong path: ValueError naming the path."""
    with pytest.raises(ValueError, match=complaint) as caught:
        parse_path(path)
    assert repr(path) in str(caught.value)


# --- drop and hash --------------------------------------------------------------------------


def test_drop_removes_a_nested_key_and_keeps_its_siblings() -> None:
    """Dropping `message.content` leaves `message.id` and everything else."""
    obj = {"id": "e1", "message": {"id": "m1", "content": {"value": "secret"}}}
    assert edit(obj, rules(drop=("message.content",)), HMAC) == {
        "id": "e1",
        "message": {"id": "m1"},
    }


def test_star_matches_every_key_of_an_object() -> None:
    """`*.input` drops `input` under every top-level key, whatever their names."""
    obj = {"a": {"input": 1, "k": 1}, "b": {"input": 2}, "c": 3, "input": 4}
    assert edit(obj, rules(drop=("*.input",)), HMAC) == {"a": {"k": 1}, "b": {}, "c": 3, "input": 4}


def test_star_matches_every_element_of_a_list() -> None:
    """`output.*.text` drops `text` in each element; elements that are not objects are kept."""
    obj = {"output": [{"text": "x", "n": 1}, {"text": "y"}, "plain", 7, None]}
    expected = {"output": [{"n": 1}, {}, "plain", 7, None]}
    assert edit(obj, rules(drop=("output.*.text",)), HMAC) == expected


def test_a_trailing_star_empties_an_object_or_a_list() -> None:
    """`annotations.*` removes every element; `input.*` every key; the containers stay."""
    obj = {"annotations": [1, 2, {"u": 3}], "input": {"a": 1, "b": 2}}
    assert edit(obj, rules(drop=("annotations.*", "input.*")), HMAC) == {
        "annotations": [],
        "input": {},
    }


def test_a_key_names_no_list_element() -> None:
    """A literal segment applied to a list matches nothing (only `*` enters lists)."""
    obj = {"items": [{"0": "a"}, "b"]}
    assert edit(obj, rules(drop=("items.0",)), HMAC) is obj


@pytest.mark.parametrize(
    "obj",
    [
        {"message": "a string where an object was expected"},
        {"message": 42},
        {"message": None},
        {"message": True},
        {"message": []},
        {"other": {"content": "x"}},
        {},
    ],
)
def test_a_path_that_does_not_match_changes_nothing(obj: dict[str, Any]) -> None:
    """A missing key or a non-object on the way: the very same object comes back."""
    assert edit(obj, rules(drop=("message.content.value",), hash=("message.id",)), HMAC) is obj


def test_hash_replaces_the_value_with_its_keyed_hash_in_the_documented_form() -> None:
    """A string hashes as its UTF-8 bytes: `hmac-sha256:` + HMAC-SHA256(key, value) in hex."""
    obj = {"actor": {"user_email": "dana@example.com"}}
    expected = hmac.new(
        KEY.get_secret_value().encode(), b"dana@example.com", hashlib.sha256
    ).hexdigest()
    got = edit(obj, rules(hash=("actor.user_email",)), HMAC)
    assert got == {"actor": {"user_email": f"hmac-sha256:{expected}"}}


def test_without_a_key_the_hash_is_plain_sha256() -> None:
    """No hash_key: `sha256:` + SHA-256(value) in hex, which differs from the keyed form."""
    digest = hashlib.sha256(b"dana@example.com").hexdigest()
    assert PLAIN("dana@example.com") == f"sha256:{digest}"
    assert HMAC("dana@example.com") != PLAIN("dana@example.com")
    assert HMAC("dana@example.com").removeprefix("hmac-sha256:") != digest


@given(st.text(), st.text())
def test_the_hash_is_deterministic_so_values_still_join(a: str, b: str) -> None:
    """Same input, same hash (across hashers with the same key); different inputs, different hashes."""
    assert HMAC(a) == hasher(KEY)(a)
    assert (HMAC(a) == HMAC(b)) == (a == b)
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", HMAC(a))


def test_a_non_string_value_hashes_as_its_sorted_json() -> None:
    """Objects, lists and numbers hash as compact JSON with sorted keys; null stays null."""
    sorted_json = orjson.dumps({"a": 1, "b": [2]}, option=orjson.OPT_SORT_KEYS)
    expected = hmac.new(KEY.get_secret_value().encode(), sorted_json, hashlib.sha256).hexdigest()
    assert HMAC({"b": [2], "a": 1}) == f"hmac-sha256:{expected}"
    obj = {"input": {"b": [2], "a": 1}, "n": None}
    assert edit(obj, rules(hash=("input", "n")), HMAC) == {
        "input": f"hmac-sha256:{expected}",
        "n": None,
    }


def test_drop_wins_over_hash_and_overlapping_hashes_hash_once() -> None:
    """A value both dropped and hashed is dropped; two hash paths to one value hash it once."""
    obj = {"actor": {"user_email": "a@example.com", "id": "u1"}}
    got = edit(obj, rules(drop=("actor.user_email",), hash=("actor.*",)), HMAC)
    assert got == {"actor": {"id": HMAC("u1")}}
    twice = edit(obj, rules(hash=("actor.*", "actor.user_email")), HMAC)
    assert twice["actor"]["user_email"] == HMAC("a@example.com")


def test_an_escaped_dot_reaches_an_audit_log_payload() -> None:
    r"""`api_key\.created.data` drops the data of the object keyed by the event type."""
    obj = {"type": "api_key.created", "api_key.created": {"id": "k", "data": {"scopes": ["x"]}}}
    got = edit(obj, rules(drop=(r"api_key\.created.data",)), HMAC)
    assert got == {"type": "api_key.created", "api_key.created": {"id": "k"}}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "*", "a.b"]), inner, max_size=4)
    ),
    max_leaves=30,
)
PATHS = st.lists(st.sampled_from(["a", "b", "c", "*", r"\*", r"a\.b"]), min_size=1, max_size=4)


@settings(max_examples=300)
@given(JSON, st.lists(PATHS, max_size=3), st.lists(PATHS, max_size=3))
def test_edit_never_changes_its_input_and_leaves_nothing_to_drop(
    obj: Any, drops: list[list[str]], hashes: list[list[str]]
) -> None:
    """Any object, any rules: the input is untouched, and dropping again finds nothing more."""
    before = copy.deepcopy(obj)
    drop_paths = tuple(".".join(p) for p in drops)
    got = edit(obj, rules(drop=drop_paths, hash=tuple(".".join(p) for p in hashes)), HMAC)
    assert obj == before
    again = edit(got, rules(drop=drop_paths), HMAC)
    assert again is got


def test_a_deeply_nested_object_is_walked_only_as_deep_as_the_path() -> None:
    """An object nested 100 000 deep costs no recursion beyond the path's own length."""
    deep: Any = "bottom"
    for _ in range(100_000):
        deep = {"a": deep}
    obj = {"content": "secret", "nest": deep}
    got = edit(obj, rules(drop=("content", "nest.a.a.b"), hash=("*.*.*.*.x",)), HMAC)
    assert got == {"nest": deep}
    assert got["nest"] is deep


# --- the view a sink gets -------------------------------------------------------------------


def event(obj: dict[str, Any], cls: type[AuditEvent] = AuditEvent) -> AuditEvent:
    return cls.from_api(obj, organization="org-label")


def test_an_edited_event_is_new_and_the_shared_one_is_unchanged() -> None:
    """The view builds a new event; the one every other sink shares keeps its content."""
    obj = {"id": "e1", "type": "t", "effective_at": 5, "message": {"content": "secret"}}
    shared = event(obj)
    seen = view(drop=("message.content",)).apply(shared)
    assert seen is not shared
    assert b"secret" not in seen.json
    assert shared.raw == {
        "id": "e1",
        "type": "t",
        "effective_at": 5,
        "message": {"content": "secret"},
    }
    assert b"secret" in shared.json


def test_an_edited_event_keeps_its_identity_and_its_class() -> None:
    """id, type, effective_at and organization are kept, and a ComplianceRecord stays one."""
    line = (SAMPLES / "CONVERSATION_MESSAGE.jsonl").read_text().splitlines()[0]
    record = orjson.loads(line)
    record.update(id=record["event_id"], effective_at=1_780_000_000)
    shared = event(record, ComplianceRecord)
    seen = view(drop=("message.content",), hash=("actor.user_email",)).apply(shared)
    assert type(seen) is ComplianceRecord
    assert seen.source_type == "chatgpt_compliance"
    identity = (seen.id, seen.type, seen.effective_at, seen.organization)
    assert identity == (shared.id, shared.type, shared.effective_at, shared.organization)
    assert "content" not in seen.raw["message"]
    assert seen.raw["actor"]["user_email"] == HMAC(record["actor"]["user_email"])


@pytest.mark.parametrize(
    ("sample", "path", "content"),
    [
        ("CONVERSATION_MESSAGE", "message.content", "login outage"),
        ("APP_LOG", "input", "In Progress"),
        ("APP_LOG", "output", "Found 7 issues"),
        ("CODEX_LOG", "event_details.prompt_text", "upload handler"),
    ],
)
def test_the_documented_content_fields_of_compliance_records_can_be_dropped(
    sample: str, path: str, content: str
) -> None:
    """Message content, app input and output, and Codex prompts leave no trace once dropped."""
    lines = (SAMPLES / f"{sample}.jsonl").read_text().splitlines()
    records = [orjson.loads(line) for line in lines]
    found = [r for r in records if content in orjson.dumps(r).decode()]
    assert found, f"the {sample} samples no longer hold {content!r}"
    for record in found:
        record.update(id=record["event_id"], effective_at=1_780_000_000)
        seen = view(drop=(path, "*.response_text")).apply(event(record, ComplianceRecord))
        assert content not in seen.json.decode()


def test_an_event_the_rules_do_not_touch_is_passed_on_as_it_is() -> None:
    """No match: the very same event object goes to the sink (no copy, no re-encoding)."""
    shared = event({"id": "e1", "type": "login.succeeded", "effective_at": 5, "actor": {}})
    assert view(drop=("message.content",)).apply(shared) is shared


def test_no_rules_and_no_types_is_no_view() -> None:
    """A sink without privacy or event_types keys gets no view: it costs nothing."""
    assert sink_view([], None, None) is None
    assert sink_view([], PrivacySettings(), None) is None


def test_event_types_leaves_out_the_other_types() -> None:
    """A view with event_types passes only those types, unedited when there are no rules."""
    events = [event({"id": f"e{i}", "type": t, "effective_at": i}) for i, t in enumerate("abab")]
    only = sink_view(["a"], None, None)
    assert only is not None
    sent, withheld = only.prepare(events)
    assert [e.id for e in sent] == ["e0", "e2"] and withheld == []
    assert sent[0] is events[0]


def nested_json(depth: int, leaf: str) -> bytes:
    return b'{"id":"deep","type":"t","effective_at":1,"content":"secret","x":' + (
        b"[" * depth + f'"{leaf}"'.encode() + b"]" * depth + b"}"
    )


@pytest.mark.parametrize("depth", [300, 5000])
def test_an_event_too_deep_to_re_encode_is_withheld_not_sent_whole(depth: int) -> None:
    """An edited event that cannot be encoded again goes to dead letters as its id only, no traceback."""
    shared = AuditEvent("deep", "t", 1, json=nested_json(depth, "leaf"))
    sent, withheld = view(drop=("content",)).prepare([shared])
    assert sent == []
    [(stub, reason)] = withheld
    assert (stub.id, stub.type, stub.effective_at) == ("deep", "t", 1)
    assert b"secret" not in stub.json
    assert "privacy rules could not be applied" in reason


def test_a_deep_event_the_rules_do_not_touch_is_sent_as_it_is() -> None:
    """Depth alone is no reason to withhold: an unmatched deep event goes on unchanged."""
    shared = AuditEvent("deep", "t", 1, json=nested_json(300, "leaf"))
    assert view(drop=("message",)).prepare([shared]) == ([shared], [])


# --- through a sink's worker ----------------------------------------------------------------


def test_the_worker_skips_other_types_yet_moves_the_cursor_past_them(tmp_path: Path) -> None:
    """Events of types a sink does not take are settled: not sent, not dead-lettered, not sent again."""
    out = tmp_path / "out.jsonl"
    sink = plugin.create(
        FileSettings(type="file", name="f", path=str(out)), SinkContext(state_dir=tmp_path)
    )
    sink.open()
    store = CursorStore(tmp_path / "state", "default")
    events = [
        event({"id": f"e{i}", "type": t, "effective_at": 100 + i, "content": "secret"})
        for i, t in enumerate(["login.failed", "CONVERSATION_MESSAGE"] * 3)
    ]
    worker = SinkWorker(
        name="f",
        sink=sink,
        cursor=Cursor(high_water=100),
        store=store,
        dead_letter_path=tmp_path / "dead.jsonl",
        lookback=600,
        view=sink_view(["login.failed"], PrivacySettings(drop=["content"]), None),
    )
    worker.start()
    worker.offer(Window(100, 200, events), stall_timeout=None)
    worker.offer(Window(100, 200, events), stall_timeout=None)  # the same again: nothing new
    report = worker.finish()
    sink.close()
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [d["id"] for d in lines] == ["e0", "e2", "e4"]
    assert all("content" not in d for d in lines)
    assert (report.delivered, report.dead_lettered, report.state) == (3, 0, "ok")
    saved = store.load("f")
    assert saved is not None and saved.high_water == 200
    assert set(saved.seen) == {e.id for e in events}
    assert not (tmp_path / "dead.jsonl").exists()


# --- configuration --------------------------------------------------------------------------


def config(privacy: str | dict[str, Any], **sink: Any) -> dict[str, Any]:
    return {
        "source": {"api_key_env": "X"},
        "sinks": [
            {"type": "file", "name": "ok", "path": "/tmp/a"},
            {"type": "file", "name": "siem", "path": "/tmp/b", "privacy": privacy, **sink},
        ],
    }


@pytest.mark.parametrize(
    ("privacy", "key", "complaint"),
    [
        ({"drop": ["ok", "a..b"]}, "sinks[1].privacy.drop[1]", "empty segment"),
        ({"hash": ["a*"]}, "sinks[1].privacy.hash[0]", "whole segment"),
        ({"hash": "actor.user_email"}, "sinks[1].privacy.hash", "valid list"),
        ({"dorp": ["a"]}, "sinks[1].privacy.dorp", "unknown key"),
        ({"hash_key": {"env": "K"}}, "sinks[1].privacy", "hash names no path"),
        ({"hash": ["a"], "hash_key": {}}, "sinks[1].privacy.hash_key", "give env"),
        ("drop everything", "sinks[1].privacy", "valid dictionary"),
    ],
)
def test_a_bad_privacy_table_is_a_config_error_naming_the_key(
    privacy: Any, key: str, complaint: str
) -> None:
    """Bad paths, unknown keys and a key without hash paths: ConfigError naming sinks[i].privacy...."""
    with pytest.raises(ConfigError) as caught:
        parse_config(config(privacy), "shipper.toml")
    assert f"{key}:" in str(caught.value)
    assert complaint in str(caught.value)


def test_event_types_must_be_a_list_of_names() -> None:
    """`event_types = "login.failed"` (not a list) is refused naming sinks[i].event_types."""
    with pytest.raises(ConfigError, match=r"sinks\[1\]\.event_types"):
        parse_config(config({}, event_types="login.failed"), "shipper.toml")


def test_the_hash_key_is_read_at_start_up_and_masked_everywhere(tmp_path: Path) -> None:
    """A configured hash key is read with the other secrets and then redacted from any text."""
    secret = "privacy-startup-key-9a8b7c6d5e4f"
    key_file = tmp_path / "key"
    key_file.write_text(secret + "\n")
    admin_key = tmp_path / "admin-key"
    admin_key.write_text("sk-admin-privacy-unit-0123456789")
    data = config({"hash": ["actor.user_email"], "hash_key": {"file": str(key_file)}})
    parsed = parse_config(data | {"source": {"api_key_file": str(admin_key)}}, "shipper.toml")
    read_every_secret(parsed)
    assert redact(f"error: {secret} leaked") == f"error: {MASK} leaked"
    settings = parsed.sinks[1]
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
