"""The emulator over real HTTP on loopback: listing, filters, auth, faults, control, lifecycle."""

from __future__ import annotations

import json
import operator
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shipper.emulator import Emulator, Fault, generate_events, is_tenant_scoped

KEY = "sk-admin-test-0123456789abcdefghij-WXYZ"
PATH = "/organization/audit_logs"
START, END = 1_722_000_000, 1_722_000_120  # 700 events in 120 s: many share a second
ROOT = Path(__file__).resolve().parents[2]
REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")

Event = dict[str, Any]


@pytest.fixture(scope="module")
def dataset() -> list[Event]:
    return generate_events(
        700, start=START, end=END, seed=21, hostile_ratio=0.1, unknown_ratio=0.05
    )


@pytest.fixture
def emulator(dataset: list[Event]) -> Iterator[Emulator]:
    with Emulator(api_key=KEY, events=dataset, seed=1) as emu:
        yield emu


@pytest.fixture
def client(emulator: Emulator) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=emulator.base_url, headers=headers, timeout=10) as c:
        yield c


def page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    response = client.get(PATH, params=params)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def fetch_all(client: httpx.Client, **params: Any) -> list[Event]:
    """Follow `after` while has_more; at most 1000 pages."""
    events: list[Event] = []
    for _ in range(1000):
        body = page(client, limit=100, **params)
        events += body["data"]
        if not body["has_more"]:
            return events
        params["after"] = body["last_id"]
    raise AssertionError("paging did not end")


def listing(
    events: list[Event],
    order: str,
    *,
    tenant: bool = False,
    keep: Callable[[Event], bool] = lambda e: True,
) -> list[Event]:
    """The reference answer: matching events of one tenant scope, in listing order."""
    chosen = [e for e in events if is_tenant_scoped(e["type"]) == tenant and keep(e)]
    return sorted(chosen, key=lambda e: (e["effective_at"], e["id"]), reverse=order == "desc")


def ids(events: list[Event]) -> list[str]:
    return [e["id"] for e in events]


def actor_ids(event: Event) -> set[str]:
    actor = event.get("actor") or {}
    if actor.get("type") == "session":
        return {actor["session"]["user"]["id"]}
    if actor.get("type") == "api_key":
        key = actor["api_key"]
        return {key["id"], (key.get("user") or key.get("service_account"))["id"]}
    return set()


def actor_email(event: Event) -> str | None:
    actor = event.get("actor") or {}
    who = (actor.get("session") or actor.get("api_key") or {}).get("user") or {}
    return who.get("email")


# --- listing and paging --------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_paging_with_after_returns_every_event_once(
    emulator: Emulator, client: httpx.Client, dataset: list[Event], order: str
) -> None:
    """Following `after` yields every non-tenant event exactly once, byte-for-byte, in order."""
    emulator.order = order  # type: ignore[assignment]
    assert fetch_all(client) == listing(dataset, order)


def test_default_order_is_newest_first(client: httpx.Client, dataset: list[Event]) -> None:
    """Without configuration the listing is newest first, 20 per page, first/last ids set."""
    body = page(client)
    assert body["object"] == "list"
    assert ids(body["data"]) == ids(listing(dataset, "desc")[:20])
    assert body["first_id"] == body["data"][0]["id"]
    assert body["last_id"] == body["data"][-1]["id"]
    assert body["has_more"] is True


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_before_returns_the_items_preceding_the_cursor(
    emulator: Emulator, client: httpx.Client, order: str
) -> None:
    """`before=X` returns the `limit` items just before X in listing order."""
    emulator.order = order  # type: ignore[assignment]
    first = page(client, limit=10)
    second = page(client, limit=10, after=first["last_id"])
    back = page(client, limit=10, before=second["first_id"])
    assert back["data"] == first["data"]
    assert back["has_more"] is False
    nearest = page(client, limit=3, before=second["first_id"])
    assert nearest["data"] == first["data"][-3:]
    assert nearest["has_more"] is True


def test_empty_listing_has_null_ids(client: httpx.Client) -> None:
    """A window with no events gives an empty page with null first/last ids."""
    body = page(client, **{"effective_at[gte]": END + 100})
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


@pytest.mark.parametrize(
    ("op", "compare"),
    [("gt", operator.gt), ("gte", operator.ge), ("lt", operator.lt), ("lte", operator.le)],
)
def test_time_filters(
    client: httpx.Client, dataset: list[Event], op: str, compare: Callable[[int, int], bool]
) -> None:
    """Each effective_at bound includes or excludes a second shared by several events."""
    busiest = Counter(e["effective_at"] for e in dataset).most_common(1)[0][0]
    got = fetch_all(client, **{f"effective_at[{op}]": busiest})
    assert got == listing(dataset, "desc", keep=lambda e: compare(e["effective_at"], busiest))


def test_closed_window_with_two_bounds(client: httpx.Client, dataset: list[Event]) -> None:
    """gte and lt together select a half-open window."""
    got = fetch_all(client, **{"effective_at[gte]": START + 30, "effective_at[lt]": START + 60})
    assert got == listing(
        dataset, "desc", keep=lambda e: START + 30 <= e["effective_at"] < START + 60
    )


def _filter_cases(dataset: list[Event]) -> dict[str, tuple[list[str], Callable[[Event], bool]]]:
    org = [e for e in dataset if not is_tenant_scoped(e["type"])]
    projects = sorted({e["project"]["id"] for e in org if e.get("project")})[:2]
    types = ["project.created", "login.failed", "future_feature.enabled"]
    sessions = [e for e in org if (e.get("actor") or {}).get("type") == "session"]
    keys = [e["actor"]["api_key"] for e in org if (e.get("actor") or {}).get("type") == "api_key"]
    user_id = sessions[0]["actor"]["session"]["user"]["id"]
    sa_id = next(k["service_account"]["id"] for k in keys if k["type"] == "service_account")
    key_id = keys[0]["id"]
    email = sessions[1]["actor"]["session"]["user"]["email"]
    resources = [e[e["type"]]["id"] for e in org if "id" in e[e["type"]]][:3]
    return {
        "project_ids[]": (projects, lambda e: (e.get("project") or {}).get("id") in projects),
        "event_types[]": (types, lambda e: e["type"] in types),
        "actor_ids[]=user": ([user_id], lambda e: user_id in actor_ids(e)),
        "actor_ids[]=service_account": ([sa_id], lambda e: sa_id in actor_ids(e)),
        "actor_ids[]=api_key": ([key_id], lambda e: key_id in actor_ids(e)),
        "actor_emails[]": ([email], lambda e: actor_email(e) == email),
        "resource_ids[]": (resources, lambda e: e[e["type"]].get("id") in resources),
    }


@pytest.mark.parametrize(
    "case",
    [
        "project_ids[]",
        "event_types[]",
        "actor_ids[]=user",
        "actor_ids[]=service_account",
        "actor_ids[]=api_key",
        "actor_emails[]",
        "resource_ids[]",
    ],
)
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_array_filters(
    emulator: Emulator, client: httpx.Client, dataset: list[Event], case: str, order: str
) -> None:
    """Each array filter (repeated parameter) selects exactly the matching events, across pages."""
    emulator.order = order  # type: ignore[assignment]
    values, keep = _filter_cases(dataset)[case]
    expected = listing(dataset, order, keep=keep)
    assert expected, "the case must select something"
    got: list[Event] = []
    cursor: dict[str, str] = {}
    for _ in range(100):
        body = page(client, limit=7, **{case.partition("=")[0]: values}, **cursor)
        got += body["data"]
        if not body["has_more"]:
            break
        cursor = {"after": body["last_id"]}
    assert got == expected


def test_filters_combine_with_and(client: httpx.Client, dataset: list[Event]) -> None:
    """Different filters must all match; values within one filter are alternatives."""
    types = ["login.failed", "login.succeeded", "api_key.created"]
    keep = lambda e: e["type"] in types and e["effective_at"] >= START + 10  # noqa: E731
    got = fetch_all(client, **{"event_types[]": types, "effective_at[gte]": START + 10})
    assert got == listing(dataset, "desc", keep=keep)


def test_tenant_only_passes_partition_the_events(
    client: httpx.Client, dataset: list[Event]
) -> None:
    """tenant_only=true lists only tenant-scoped types, the default pass the rest; together: all."""
    tenant = fetch_all(client, tenant_only="true")
    org = fetch_all(client, tenant_only="false")
    assert tenant == listing(dataset, "desc", tenant=True)
    assert all(is_tenant_scoped(e["type"]) for e in tenant)
    assert not any(is_tenant_scoped(e["type"]) for e in org)
    assert sorted(ids(tenant) + ids(org)) == sorted(ids(dataset))


def test_tenant_only_rejects_other_types(client: httpx.Client) -> None:
    """event_types[] may not mix scopes: non-tenant types with tenant_only, or the reverse."""
    with_tenant = client.get(
        PATH,
        params={"tenant_only": "true", "event_types[]": ["tenant.user.added", "project.created"]},
    )
    assert with_tenant.status_code == 400
    assert "project.created" in with_tenant.json()["error"]["message"]
    without = client.get(PATH, params={"event_types[]": "role.bound_to_resource"})
    assert without.status_code == 400
    ok = client.get(PATH, params={"tenant_only": "true", "event_types[]": "role.bound_to_resource"})
    assert ok.status_code == 200


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["0", "101", "-5", "ten", ""])
def test_limit_out_of_bounds_is_400_naming_limit(client: httpx.Client, limit: str) -> None:
    """limit outside 1..100 (or not an integer) is a 400 OpenAI error with param=limit."""
    response = client.get(PATH, params={"limit": limit})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "limit"
    assert error["type"] == "invalid_request_error"


def test_limit_bounds_are_inclusive(client: httpx.Client) -> None:
    """limit=1 and limit=100 are accepted."""
    assert len(page(client, limit=1)["data"]) == 1
    assert len(page(client, limit=100)["data"]) == 100


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"effective_at[gte]": "yesterday"}, "effective_at[gte]"),
        ({"effective_at[lt]": "1.5"}, "effective_at[lt]"),
        ({"tenant_only": "maybe"}, "tenant_only"),
        ({"after": "audit_log-nope"}, "after"),
        ({"before": "audit_log-nope"}, "before"),
    ],
)
def test_bad_parameters_are_400(client: httpx.Client, params: dict[str, str], param: str) -> None:
    """A bad integer, boolean or unknown cursor is a 400 that names the parameter."""
    response = client.get(PATH, params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_after_and_before_together_are_400(client: httpx.Client) -> None:
    """`after` and `before` exclude each other."""
    first = page(client, limit=2)
    response = client.get(PATH, params={"after": first["first_id"], "before": first["last_id"]})
    assert response.status_code == 400


def test_unknown_parameters_are_ignored_and_counted(
    emulator: Emulator, client: httpx.Client
) -> None:
    """Parameters the API does not know (e.g. order, non-bracketed effective_at) change nothing."""
    assert page(client, order="asc", effective_at=START) == page(client)
    assert emulator.stats.ignored_params == {"order": 1, "effective_at": 1}


# --- auth ----------------------------------------------------------------------------------------


def test_missing_key_is_401(emulator: Emulator) -> None:
    """No Authorization header is a 401 asking for a key."""
    response = httpx.get(emulator.base_url + PATH)
    assert response.status_code == 401
    assert "didn't provide an API key" in response.json()["error"]["message"]


def test_wrong_key_is_401_with_masked_key(emulator: Emulator) -> None:
    """A wrong key is a 401 invalid_api_key whose message shows only its first 5 and last 4 chars."""
    wrong = "sk-admin-WRONG-secretsecretsecret-9876"
    response = httpx.get(emulator.base_url + PATH, headers={"Authorization": f"Bearer {wrong}"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key"
    assert error["type"] == "invalid_request_error"
    assert wrong not in response.text
    assert wrong[5:-4] not in response.text
    assert f"{wrong[:5]}*" in error["message"]
    assert f"*{wrong[-4:]}." in error["message"]


def test_key_without_permission_is_403_missing_scope(dataset: list[Event]) -> None:
    """A key lacking api.audit_logs.read gets a 403 naming the scope, code null."""
    limited = "sk-admin-readonly-0000000000000000"
    with Emulator(api_key=KEY, events=dataset, keys_without_permission=[limited]) as emu:
        response = httpx.get(emu.base_url + PATH, headers={"Authorization": f"Bearer {limited}"})
    assert response.status_code == 403
    assert "api.audit_logs.read" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] is None


def test_audit_logging_disabled_is_403_pointing_to_settings() -> None:
    """With audit logging off the API answers 403 saying so and where to turn it on."""
    with Emulator(api_key=KEY, audit_logging_enabled=False) as emu:
        response = httpx.get(emu.base_url + PATH, headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 403
    message = response.json()["error"]["message"]
    assert "not enabled" in message
    assert "Organization Settings" in message


# --- faults --------------------------------------------------------------------------------------


def test_429_carries_retry_after_and_an_openai_error(
    emulator: Emulator, client: httpx.Client
) -> None:
    """A 429 fault answers once with Retry-After and a rate_limit_exceeded error, then recovers."""
    emulator.inject(Fault("429", retry_after="2"))
    response = client.get(PATH)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert client.get(PATH).status_code == 200


def test_429_without_retry_after_omits_the_header(emulator: Emulator, client: httpx.Client) -> None:
    """retry_after=None sends no Retry-After header."""
    emulator.inject(Fault("429"))
    response = client.get(PATH)
    assert response.status_code == 429
    assert "retry-after" not in response.headers


def test_503_with_http_date_retry_after_has_an_html_body(
    emulator: Emulator, client: httpx.Client
) -> None:
    """A 503 carries an HTTP-date Retry-After when given and an HTML proxy page."""
    when = "Wed, 21 Oct 2037 07:28:00 GMT"
    emulator.inject(Fault("503", retry_after=when))
    response = client.get(PATH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == when
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("status", ["500", "502", "503", "504"])
def test_5xx_faults_answer_with_html(emulator: Emulator, client: httpx.Client, status: str) -> None:
    """5xx faults look like a proxy error page: HTML, not JSON."""
    emulator.inject(Fault(status))  # type: ignore[arg-type]
    response = client.get(PATH)
    assert response.status_code == int(status)
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.parametrize("status", ["408", "409", "400", "403"])
def test_status_faults_answer_once(emulator: Emulator, client: httpx.Client, status: str) -> None:
    """408/409/400/403 faults answer with that status once, then the API answers normally."""
    emulator.inject(Fault(status))  # type: ignore[arg-type]
    assert client.get(PATH).status_code == int(status)
    assert client.get(PATH).status_code == 200


def test_401_fault_masks_the_presented_key(emulator: Emulator, client: httpx.Client) -> None:
    """An injected 401 looks like a real one: invalid_api_key, the key masked."""
    emulator.inject(Fault("401"))
    response = client.get(PATH)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert KEY not in response.text


def test_truncated_body_fails_json_parsing(emulator: Emulator, client: httpx.Client) -> None:
    """A truncated answer is a 200 with a correct Content-Length for a cut JSON body."""
    emulator.inject(Fault("truncated"))
    cut = client.get(PATH)
    whole = client.get(PATH)
    assert cut.status_code == 200
    assert int(cut.headers["content-length"]) == len(cut.content) < len(whole.content)
    assert whole.content.startswith(cut.content)
    with pytest.raises(json.JSONDecodeError):
        cut.json()


def test_concatenated_body_holds_two_json_documents(
    emulator: Emulator, client: httpx.Client
) -> None:
    """A concatenated answer is two JSON documents back to back; a strict parser fails."""
    emulator.inject(Fault("concatenated"))
    response = client.get(PATH)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    text = response.text
    first, end = json.JSONDecoder().raw_decode(text)
    assert json.loads(text[end:]) == first
    assert first["object"] == "list"


def test_html200_is_a_200_html_page(emulator: Emulator, client: httpx.Client) -> None:
    """html200 answers 200 with an HTML page instead of JSON."""
    emulator.inject(Fault("html200"))
    response = client.get(PATH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_reset_raises_a_transport_error_then_recovers(
    emulator: Emulator, client: httpx.Client
) -> None:
    """reset closes the connection without an answer; the next request succeeds."""
    emulator.inject(Fault("reset"))
    with pytest.raises(httpx.TransportError):
        client.get(PATH)
    assert client.get(PATH).status_code == 200


def test_timeout_fault_trips_a_short_client_timeout(
    emulator: Emulator, client: httpx.Client
) -> None:
    """timeout delays the answer past a short client timeout; a patient client gets the page."""
    emulator.inject(Fault("timeout", delay=1.0))
    with pytest.raises(httpx.TimeoutException):
        client.get(PATH, timeout=0.2)
    emulator.inject(Fault("timeout", delay=0.05))
    response = client.get(PATH)
    assert response.status_code == 200
    assert len(response.json()["data"]) == 20


def test_page_delay_slows_every_list_response(dataset: list[Event]) -> None:
    """page_delay is added to every list response (a short client timeout trips on it)."""
    with Emulator(api_key=KEY, events=dataset, page_delay=1.0) as emu:
        with pytest.raises(httpx.TimeoutException):
            httpx.get(emu.base_url + PATH, headers={"Authorization": f"Bearer {KEY}"}, timeout=0.2)
        emu.page_delay = 0.0
        assert (
            httpx.get(emu.base_url + PATH, headers={"Authorization": f"Bearer {KEY}"}).status_code
            == 200
        )


def test_faults_are_consumed_in_injection_order(emulator: Emulator, client: httpx.Client) -> None:
    """Counted faults fire one per request in the order injected, then the API recovers."""
    emulator.inject(Fault("429", count=2))
    emulator.inject(Fault("502"))
    statuses = [client.get(PATH).status_code for _ in range(4)]
    assert statuses == [429, 429, 502, 200]
    assert emulator.stats.faults_served == {"429": 2, "502": 1}


def test_probabilistic_faults_fire_until_cleared(emulator: Emulator, client: httpx.Client) -> None:
    """probability=1 fires on every request until clear_faults(); 0.5 fires on some."""
    emulator.inject(Fault("503", probability=1.0))
    assert [client.get(PATH).status_code for _ in range(3)] == [503, 503, 503]
    emulator.clear_faults()
    assert client.get(PATH).status_code == 200
    emulator.inject(Fault("500", probability=0.5))
    failures = sum(client.get(PATH).status_code == 500 for _ in range(40))
    assert 0 < failures < 40


def test_faults_apply_only_to_list_requests(emulator: Emulator, client: httpx.Client) -> None:
    """Control requests neither trigger nor consume a fault."""
    emulator.inject(Fault("500"))
    assert httpx.get(f"http://127.0.0.1:{emulator.port}/_emulator/stats").status_code == 200
    assert client.get(PATH).status_code == 500


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "nope"},
        {"kind": "429", "count": 0},
        {"kind": "429", "probability": 2},
        {"kind": "429", "retry_after": "1\r\nX: y"},
    ],
)
def test_invalid_faults_are_rejected(fields: dict[str, Any]) -> None:
    """Unknown kinds, non-positive counts, bad probabilities and multi-line headers raise."""
    with pytest.raises(ValueError):
        Fault(**fields)


# --- late arrival --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["desc", "asc"])
def test_late_events_ahead_of_the_cursor_appear_behind_it_do_not(
    emulator: Emulator, client: httpx.Client, dataset: list[Event], order: str
) -> None:
    """Events added mid-listing show up if the cursor has not passed their place, else not."""
    emulator.order = order  # type: ignore[assignment]
    first = page(client, limit=100)
    seen_edge = first["data"][-1]["effective_at"]
    older = emulator.add_late_events(40, max_age=seen_edge - START, now=seen_edge, seed=5)
    newer = emulator.add_late_events(40, max_age=1, now=END + 10, seed=6)
    ahead, behind = (older, newer) if order == "desc" else (newer, older)
    rest = fetch_all(client, after=first["last_id"])
    got = ids(first["data"] + rest)
    assert set(ids(listing(ahead, order))) <= set(got)
    assert set(got).isdisjoint(ids(listing(behind, order)))
    assert len(got) == len(set(got)) == len(listing(dataset + ahead, order))
    assert ids(listing(ahead, order)), "some late events are not tenant-scoped"
    assert ids(fetch_all(client)) == ids(listing(dataset + older + newer, order))


def test_add_late_events_window_and_ground_truth(emulator: Emulator, dataset: list[Event]) -> None:
    """add_late_events dates events in [now - max_age, now) and events() includes them, sorted."""
    late = emulator.add_late_events(25, max_age=30, now=END + 500)
    assert all(END + 470 <= e["effective_at"] < END + 500 for e in late)
    truth = emulator.events()
    assert len(truth) == len(dataset) + 25
    assert truth == sorted(truth, key=lambda e: (e["effective_at"], e["id"]))


def test_duplicate_ids_are_refused(emulator: Emulator, dataset: list[Event]) -> None:
    """Adding an event whose id is already held raises ValueError and adds nothing."""
    with pytest.raises(ValueError):
        emulator.add_events([dataset[0]])
    assert len(emulator.events()) == len(dataset)


# --- control endpoints ---------------------------------------------------------------------------


def test_control_events_ndjson_is_the_ground_truth(emulator: Emulator) -> None:
    """GET /_emulator/events streams every event as NDJSON, ascending."""
    response = httpx.get(f"http://127.0.0.1:{emulator.port}/_emulator/events")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = response.content.splitlines()
    assert [orjson.loads(line) for line in lines] == emulator.events()


def test_control_add_events_and_late(emulator: Emulator, client: httpx.Client) -> None:
    """POST /_emulator/events and /_emulator/late add events the next listing shows."""
    control = f"http://127.0.0.1:{emulator.port}/_emulator"
    extra = generate_events(3, start=END + 1000, end=END + 1001, seed=99, unknown_ratio=0)
    extra = [e | {"type": "project.created"} for e in extra]
    added = httpx.post(f"{control}/events", content=orjson.dumps(extra))
    assert added.json() == {"added": 3}
    assert sorted(ids(page(client, limit=3)["data"])) == sorted(ids(extra))
    late = httpx.post(f"{control}/late", json={"count": 4, "max_age": 60})
    assert late.status_code == 200
    assert set(ids(late.json())) <= set(ids(emulator.events()))
    assert httpx.post(f"{control}/events", content=orjson.dumps(extra)).status_code == 400
    assert httpx.post(f"{control}/late", json={"count": 1}).status_code == 400


def test_control_faults_stats_and_order(emulator: Emulator, client: httpx.Client) -> None:
    """Faults can be injected and cleared, stats read and the order switched over HTTP."""
    control = f"http://127.0.0.1:{emulator.port}/_emulator"
    assert (
        httpx.post(
            f"{control}/faults", json={"kind": "429", "retry_after": "1", "count": 2}
        ).status_code
        == 200
    )
    assert client.get(PATH).status_code == 429
    assert httpx.delete(f"{control}/faults").status_code == 200
    assert client.get(PATH).status_code == 200
    assert httpx.post(f"{control}/faults", json={"kind": "nope"}).status_code == 400
    assert httpx.post(f"{control}/faults", json={"kind": "429", "bogus": 1}).status_code == 400
    stats = httpx.get(f"{control}/stats").json()
    assert stats["list_requests"] == 2
    assert stats["faults_served"] == {"429": 1}
    assert stats["responses_by_status"]["429"] == 1
    assert httpx.put(f"{control}/order", json={"order": "asc"}).status_code == 200
    assert emulator.order == "asc"
    assert httpx.put(f"{control}/order", json={"order": "sideways"}).status_code == 400
    assert httpx.get(f"{control}/nothing").status_code == 404


def test_unknown_path_is_an_openai_404(emulator: Emulator, client: httpx.Client) -> None:
    """Unknown URLs get the API's 'Invalid URL' error."""
    response = client.get("/organization/audit_log")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Invalid URL (GET /v1/organization/audit_log)"


def test_every_response_has_a_request_id(emulator: Emulator, client: httpx.Client) -> None:
    """x-request-id (req_ + hex) is on successes, errors, faults and control answers."""
    emulator.inject(Fault("502"))
    responses = [
        client.get(PATH),
        client.get(PATH),
        client.get(PATH, params={"limit": 0}),
        httpx.get(emulator.base_url + PATH),
        client.get("/nowhere"),
        httpx.get(f"http://127.0.0.1:{emulator.port}/_emulator/stats"),
        httpx.get(f"http://127.0.0.1:{emulator.port}/_emulator/events"),
    ]
    assert [r.status_code for r in responses] == [502, 200, 400, 401, 404, 200, 200]
    assert all(REQUEST_ID.match(r.headers["x-request-id"]) for r in responses)
    assert all(
        r.headers["content-type"].startswith(("application/", "text/html")) for r in responses
    )


# --- HTTP and lifecycle --------------------------------------------------------------------------


def _read_response(stream: Any) -> tuple[bytes, dict[str, str], bytes]:
    status = stream.readline()
    headers: dict[str, str] = {}
    for _ in range(100):
        line = stream.readline().decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers["content-length"]))


def test_keep_alive_serves_several_requests_on_one_connection(emulator: Emulator) -> None:
    """HTTP/1.1 keep-alive with exact Content-Length: three answers on one socket."""
    request = (
        f"GET /v1{PATH}?limit=2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode()
    )
    with (
        socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as sock,
        sock.makefile("rb") as stream,
    ):
        for _ in range(3):
            sock.sendall(request)
            status, headers, body = _read_response(stream)
            assert status.startswith(b"HTTP/1.1 200")
            assert "connection" not in headers
            assert len(orjson.loads(body)["data"]) == 2


def test_stop_frees_the_port_and_is_idempotent(dataset: list[Event]) -> None:
    """After stop() (even with an idle keep-alive connection open) the port can be bound again."""
    emu = Emulator(api_key=KEY, events=dataset).start()
    port = emu.port
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}) as idle:
        assert idle.get(emu.base_url + PATH).status_code == 200
        emu.stop()
        emu.stop()
        with pytest.raises(httpx.TransportError):
            idle.get(emu.base_url + PATH)
    with Emulator(api_key=KEY, port=port) as again:
        assert again.port == port
        assert (
            httpx.get(again.base_url + PATH, headers={"Authorization": f"Bearer {KEY}"}).status_code
            == 200
        )


def test_stop_interrupts_a_request_held_by_a_timeout_fault(dataset: list[Event]) -> None:
    """stop() does not wait out a held request; its client sees a transport error."""
    emu = Emulator(api_key=KEY, events=dataset).start()
    emu.inject(Fault("timeout", delay=60))
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(emu.base_url + PATH, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        except httpx.TransportError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    emu.stop()
    caller.join(timeout=20)
    assert not caller.is_alive()
    assert len(outcome) == 1


def test_ipv6_base_url_is_bracketed() -> None:
    """An IPv6 host is bracketed in base_url and served."""
    try:
        emu = Emulator(api_key=KEY, host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with emu:
        assert emu.base_url == f"http://[::1]:{emu.port}/v1"
        assert (
            httpx.get(emu.base_url + PATH, headers={"Authorization": f"Bearer {KEY}"}).status_code
            == 200
        )


def _run_cli(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], int, list[str]]:
    port_file = tmp_path / "port"
    code = "import sys; from shipper.emulator.cli import main; sys.exit(main())"
    args = [
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--events",
        "300",
        "--order",
        "asc",
        "--api-key-env",
        "EMULATOR_TEST_KEY",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    lines = []
    for _ in range(5):  # read up to the ready line
        lines.append(proc.stdout.readline())
        if "http://" in lines[-1]:
            break
    return proc, int(port_file.read_text()), lines


def _stop_cli(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_serves_with_the_demo_key_until_sigterm(tmp_path: Path) -> None:
    """Without the key variable the CLI says it accepts the demo key, prints its URL, exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k != "EMULATOR_TEST_KEY"}
    proc, port, lines = _run_cli(tmp_path, env)
    with proc:
        try:
            assert "sk-admin-emulator-demo" in lines[0]
            assert f"http://127.0.0.1:{port}/v1" in lines[-1]
            response = httpx.get(
                f"http://127.0.0.1:{port}/v1{PATH}",
                headers={"Authorization": "Bearer sk-admin-emulator-demo"},
            )
            data = response.json()["data"]
            assert [e["effective_at"] for e in data] == sorted(e["effective_at"] for e in data)
        finally:
            assert _stop_cli(proc) == 0


def test_cli_uses_the_key_from_the_environment_without_printing_it(tmp_path: Path) -> None:
    """With the variable set, only that key works and it never appears in the output."""
    secret = "sk-admin-REAL-never-print-me-0123456789"
    proc, port, lines = _run_cli(tmp_path, {**os.environ, "EMULATOR_TEST_KEY": secret})
    with proc:
        try:
            url = f"http://127.0.0.1:{port}/v1{PATH}"
            assert (
                httpx.get(
                    url, headers={"Authorization": "Bearer sk-admin-emulator-demo"}
                ).status_code
                == 401
            )
            assert httpx.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        finally:
            assert _stop_cli(proc) == 0
        assert proc.stdout is not None
        output = "".join(lines) + proc.stdout.read()
    assert secret not in output
    assert len(lines) == 1


def test_a_concurrency_limit_refuses_a_list_request_beyond_it(dataset: list[Event]) -> None:
    """max_concurrent_lists: a request arriving while that many are answered gets a 429 at once."""
    headers = {"Authorization": f"Bearer {KEY}"}
    emu = Emulator(api_key=KEY, events=dataset, page_delay=30, max_concurrent_lists=1).start()
    slow_client = httpx.Client(base_url=emu.base_url, headers=headers, timeout=60)
    outcome: list[BaseException | int] = []

    def slow_request() -> None:
        try:
            outcome.append(slow_client.get(PATH).status_code)
        except httpx.HTTPError as exc:  # the emulator hangs up on it when stopped
            outcome.append(exc)

    slow = threading.Thread(target=slow_request)
    try:
        slow.start()
        deadline = time.monotonic() + 10
        while emu.stats.most_lists_at_once < 1 and time.monotonic() < deadline:
            time.sleep(0.005)  # until the first request is being answered
        with httpx.Client(base_url=emu.base_url, headers=headers, timeout=10) as client:
            refused = client.get(PATH)
        still_answering = slow.is_alive() and not outcome
    finally:
        emu.stop()  # wakes the handler sleeping out the page delay
        slow.join(timeout=10)
        slow_client.close()
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert still_answering  # refused while the first was answered, not after its page delay
    assert emu.stats.responses_by_status.get(429) == 1
