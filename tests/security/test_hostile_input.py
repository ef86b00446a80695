"""Hostile and broken input: a clear error or carried through intact, never a crash or a silent skip."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from shipper.config.settings import AuditLogSettings, load_config, parse_config
from shipper.emulator import generate_events
from shipper.errors import ConfigError, SourceUnavailableError
from shipper.model.event import AuditEvent, normalize
from shipper.render import JSON_FORMATS, renderer
from shipper.source.audit_log.client import AuditLogClient

VALID = {
    "source": {"base_url": "http://127.0.0.1:1/v1"},
    "sinks": [{"type": "file", "name": "a", "path": "out.jsonl"}],
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    section=st.sampled_from(["source", "state", "log", "metrics", "sinks0"]),
    key=st.text(max_size=15),
    value=json_values,
)
def test_wrong_types_and_unknown_keys_are_config_errors(section: str, key: str, value: Any) -> None:
    """Any key with any value in any table either validates or raises ConfigError naming the file."""
    data = orjson.loads(orjson.dumps(VALID))
    table = data["sinks"][0] if section == "sinks0" else data.setdefault(section, {})
    table[key] = value
    try:
        parse_config(data, "shipper.toml")
    except ConfigError as exc:
        assert str(exc).startswith("shipper.toml")


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_arbitrary_text_as_config_is_a_config_error(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    """Garbage, half-written or binary-ish TOML is reported as a ConfigError, never a traceback."""
    path = tmp_path_factory.mktemp("cfg") / "shipper.toml"
    path.write_text(text, encoding="utf-8")
    with contextlib.suppress(ConfigError):
        load_config(path)


def test_oversized_event_is_carried_intact(tmp_path: Path) -> None:
    """A 4 MB event renders in every format, whole in the JSON ones, and round-trips without loss."""
    raw = generate_events(1, start=0, end=10, seed=1)[0]
    raw["project"] = {"id": "p", "name": "x" * 4_000_000}
    event = AuditEvent.from_api(raw)
    assert orjson.loads(renderer("raw")(event)) == raw
    assert normalize(event)["project_name"] == "x" * 4_000_000
    for fmt in JSON_FORMATS:
        assert len(renderer(fmt)(event)) > 4_000_000, fmt
    assert renderer("cef")(event).startswith(b"CEF:0|")


def paging_client(pages: list[dict[str, Any]]) -> AuditLogClient:
    """A client whose transport serves `pages` in order (a unit test of the paging loop only)."""
    served = iter(pages)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=orjson.dumps(next(served)))

    settings_ = AuditLogSettings(
        base_url="https://api.example.test/v1", retry_max_attempts=2, include_tenant_events=False
    )
    return AuditLogClient(
        settings_, SecretStr("k"), transport=httpx.MockTransport(handler), sleep=lambda _: None
    )


def page(ids: list[str], has_more: bool, last_id: str | None) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": i, "type": "x.y", "effective_at": 5} for i in ids],
        "has_more": has_more,
        "last_id": last_id,
    }


def test_repeated_cursor_is_detected() -> None:
    """An API that hands out the same cursor twice stops the run instead of paging forever."""
    client = paging_client([page(["a"], True, "a"), page(["b"], True, "a")])
    with pytest.raises(SourceUnavailableError, match="repeated cursor 'a'"):
        client.fetch_window(0, 10)
    client.close()


def test_has_more_without_any_cursor_is_retried_then_reported() -> None:
    """has_more with no last_id and no data is an unusable page: retried, then a clear error."""
    client = paging_client([page([], True, None)] * 2)
    with pytest.raises(SourceUnavailableError, match="no last_id"):
        client.fetch_window(0, 10)
    client.close()


def test_oversized_page_is_read_whole() -> None:
    """A page of 100 events of 200 kB each is parsed completely (nothing skipped)."""
    big = [
        {"id": f"e{i}", "type": "x.y", "effective_at": 5, "blob": "y" * 200_000} for i in range(100)
    ]
    client = paging_client([{"object": "list", "data": big, "has_more": False, "last_id": "e99"}])
    assert [e.id for e in client.fetch_window(0, 10)] == sorted(f"e{i}" for i in range(100))
    client.close()
