"""The `[source]` filters against the emulator: every parameter, in every mix, with both passes.

The spec: with `tenant_only=true` every supplied event type must be tenant-scoped, and
tenant-scoped types need `tenant_only=true`; the emulator refuses both mixes with a 400.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import AuditLogSettings, load_config
from shipper.emulator import Emulator, generate_events, is_tenant_scoped
from shipper.emulator.events import Event
from shipper.errors import SourceRefusedError
from shipper.runtime import app
from shipper.source.audit_log.client import AuditLogClient
from tests.conftest import KEY, T0, config_text, write_config

FILTERS = ("project_ids", "event_types", "actor_ids", "actor_emails", "resource_ids")


def _actor_details(event: Event) -> list[dict[str, Any]]:
    """The actor's own object and the user or service account behind an API key."""
    actor = event.get("actor") or {}
    detail = actor.get(actor.get("type")) if isinstance(actor.get("type"), str) else None
    if not isinstance(detail, dict):
        return []
    return [d for d in (detail, detail.get("user"), detail.get("service_account")) if d]


def _values(event: Event, name: str) -> set[str]:
    """What a filter compares with in `event` (the API reference's meaning of each parameter)."""
    if name == "project_ids":
        project_id = (event.get("project") or {}).get("id")
        return {project_id} if isinstance(project_id, str) else set()
    if name == "event_types":
        return {event["type"]}
    if name == "actor_ids":
        return {d["id"] for d in _actor_details(event) if "id" in d}
    if name == "actor_emails":
        return {d["email"] for d in _actor_details(event) if "email" in d}
    object_id = event[event["type"]].get("id")
    return {object_id} if isinstance(object_id, str) else set()


@pytest.fixture(scope="module")
def filtered_api() -> Iterator[tuple[Emulator, dict[str, list[str]]]]:
    """An emulator and, per filter, values that pick an ordinary and a tenant-scoped event."""
    events = generate_events(1200, start=T0 - 2 * 86400, end=T0, seed=11)
    full = [e for e in events if all(_values(e, name) for name in FILTERS)]
    anchors = [
        next(e for e in full if not is_tenant_scoped(e["type"])),
        next(e for e in full if is_tenant_scoped(e["type"])),
    ]
    values = {name: sorted(set().union(*(_values(e, name) for e in anchors))) for name in FILTERS}
    with Emulator(api_key=KEY, events=events) as emulator:
        yield emulator, values


def _matching(emulator: Emulator, chosen: dict[str, list[str]]) -> list[str]:
    return [
        e["id"]
        for e in emulator.events()
        if all(_values(e, name) & set(wanted) for name, wanted in chosen.items())
    ]


def _toml_lists(chosen: dict[str, list[str]]) -> str:
    return "".join(f"{name} = {orjson.dumps(values).decode()}\n" for name, values in chosen.items())


def _delivered(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


MIXES = [
    mix for size in range(1, len(FILTERS) + 1) for mix in itertools.combinations(FILTERS, size)
]


@pytest.mark.parametrize("mix", MIXES, ids=["+".join(m) for m in MIXES])
def test_every_filter_mix_delivers_exactly_the_matching_events(
    filtered_api: tuple[Emulator, dict[str, list[str]]],
    mix: tuple[str, ...],
    tmp_path: Path,
    admin_key: str,
) -> None:
    """Each filter and every combination of them, an event-type list mixing ordinary and
    tenant-scoped types included, delivers exactly the events that match all of them."""
    emulator, values = filtered_api
    chosen = {name: values[name] for name in mix}
    expected = _matching(emulator, chosen)
    assert expected, "the mix must select something"
    text = config_text(emulator.base_url, tmp_path, extra_source=_toml_lists(chosen))
    outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert _delivered(tmp_path / "out" / "audit.jsonl") == expected


def _client(emulator: Emulator, **overrides: Any) -> AuditLogClient:
    settings = AuditLogSettings(base_url=emulator.base_url, retry_max_attempts=2, **overrides)
    return AuditLogClient(settings, SecretStr(KEY), sleep=lambda _: None)


@pytest.mark.parametrize(
    ("types", "passes"),
    [
        (["project.created"], (False,)),
        (["tenant.user.added"], (True,)),
        (["project.created", "role.bound_to_resource"], (False, True)),
        ([], (False, True)),
    ],
)
def test_a_pass_with_no_event_type_to_ask_for_is_not_made(
    filtered_api: tuple[Emulator, dict[str, list[str]]], types: list[str], passes: tuple[bool, ...]
) -> None:
    """An event-type filter of one scope only makes the pass of that scope."""
    client = _client(filtered_api[0], event_types=types)
    try:
        assert client.passes == passes
        client.fetch_window(T0 - 3600, T0)  # no pass is refused
    finally:
        client.close()


def test_unknown_event_types_are_named_in_a_warning_and_still_asked_for(
    filtered_api: tuple[Emulator, dict[str, list[str]]],
) -> None:
    """A type the catalog does not know is asked for anyway (new types appear without notice):
    a `tenant.` one in the tenant pass, any other in the ordinary pass; the warning names them."""
    emulator = filtered_api[0]
    future = [{**emulator.events()[0], "id": "audit_log-future", "type": "future_feature.enabled"}]
    emulator.add_events(future)
    with capture_logs() as logs:
        client = _client(
            emulator,
            event_types=["future_feature.enabled", "tenant.future.enabled", "login.failed"],
        )
    try:
        assert [e["unknown"] for e in logs if e["event"] == "event_types_unknown"] == [
            ["future_feature.enabled", "tenant.future.enabled"]
        ]
        events = client.fetch_window(T0 - 3 * 86400, T0)
        assert "audit_log-future" in {e.id for e in events}
    finally:
        client.close()


def test_an_organization_that_refuses_tenant_only_still_gets_the_ordinary_pass(
    tmp_path: Path, admin_key: str
) -> None:
    """A 400 about `tenant_only` itself drops the tenant pass with a loud error and keeps
    delivering the ordinary one, instead of failing every run."""
    events = generate_events(300, start=T0 - 86400, end=T0, seed=12)
    with Emulator(api_key=KEY, events=events) as emulator:
        emulator.tenant_only_supported = False
        text = config_text(emulator.base_url, tmp_path)
        with capture_logs() as logs:
            outcome = app.run(load_config(write_config(tmp_path, text)), once=True)
        ordinary = [e["id"] for e in emulator.events() if not is_tenant_scoped(e["type"])]
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert _delivered(tmp_path / "out" / "audit.jsonl") == ordinary
    refused = [e for e in logs if e["event"] == "tenant_pass_refused"]
    assert len(refused) == 1 and refused[0]["log_level"] == "error"
    assert "tenant_only" in refused[0]["error"]


def test_a_refused_tenant_pass_still_fails_when_the_filter_asks_only_for_tenant_types() -> None:
    """With nothing left to ask in the ordinary pass, dropping the tenant pass would deliver
    nothing forever: the refusal stands."""
    with Emulator(api_key=KEY, events=generate_events(50, start=T0 - 3600, end=T0)) as emulator:
        emulator.tenant_only_supported = False
        client = _client(emulator, event_types=["tenant.user.added"])
        try:
            with pytest.raises(SourceRefusedError, match="tenant_only"):
                client.fetch_window(T0 - 3600, T0)
        finally:
            client.close()
