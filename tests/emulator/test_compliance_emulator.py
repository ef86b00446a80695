"""The Compliance Logs Platform emulator over real HTTP on loopback: listing, paging, the 307 to
signed URLs on a second port, expiry, checksums, realistic records, large files, faults."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from shipper.emulator.compliance import (
    EVENT_TYPES,
    ORGANIZATION_EVENT_TYPES,
    ComplianceEmulator,
    ComplianceFault,
    LogFile,
)

KEY = "sk-proj-compliance-test-0123456789-WXYZ"
START = datetime(2026, 7, 20, tzinfo=UTC)
AFTER = "2026-07-20T00:00:00Z"

Json = dict[str, Any]
ScopeKind = Literal["workspaces", "organizations"]


@pytest.fixture
def emulator() -> Iterator[ComplianceEmulator]:
    with ComplianceEmulator(api_key=KEY, keys_without_permission={"sk-proj-no-grant"}) as emu:
        yield emu


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(headers={"Authorization": f"Bearer {KEY}"}, timeout=10) as c:
        yield c


def list_url(emu: ComplianceEmulator, scope: ScopeKind = "workspaces") -> str:
    return emu.scope_url(scope) + "/logs"


def listing(
    emu: ComplianceEmulator, client: httpx.Client, event_type: str = "AUTH_LOG", **params: Any
) -> Json:
    scope: ScopeKind = "organizations" if event_type in ORGANIZATION_EVENT_TYPES else "workspaces"
    query = {"event_type": event_type, "after": AFTER, "limit": 100, **params}
    response = client.get(list_url(emu, scope), params=query)
    assert response.status_code == 200, response.text
    page: Json = response.json()
    return page


def signed_url(emu: ComplianceEmulator, client: httpx.Client, log_file: LogFile) -> str:
    scope: ScopeKind = "organizations" if log_file.scope[0] == "organizations" else "workspaces"
    response = client.get(f"{list_url(emu, scope)}/{log_file.id}")
    assert response.status_code == 307, response.text
    return response.headers["location"]


def decode_stream(body: bytes) -> list[Json]:
    """JSON values one after another, with or without whitespace between them."""
    decoder, text, records, at = json.JSONDecoder(), body.decode(), [], 0
    for _ in range(len(text)):  # bounded: each turn consumes at least one character
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        value, at = decoder.raw_decode(text, at)
        records.append(value)
    return records


# listing


def test_listing_pages_oldest_first_following_last_end_time(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Files come oldest end_time first; following last_end_time while has_more reaches all."""
    files = emulator.add_files("AUTH_LOG", count=7)
    seen: list[str] = []
    after = AFTER
    for _ in range(10):
        page = listing(emulator, client, after=after, limit=3)
        ends = [item["end_time"] for item in page["data"]]
        assert ends == sorted(ends)
        assert page["last_end_time"] == ends[-1]
        seen += [item["id"] for item in page["data"] if item["id"] not in seen]
        after = page["last_end_time"]
        if not page["has_more"]:
            break
    assert seen == [f.id for f in files]


def test_relisting_with_the_same_after_returns_the_boundary_file(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """after is inclusive: the file whose end_time equals after comes back first."""
    files = emulator.add_files("AUTH_LOG", count=3)
    first = listing(emulator, client, limit=2)
    again = listing(emulator, client, after=first["last_end_time"], limit=2)
    assert [item["id"] for item in again["data"]] == [files[1].id, files[2].id]
    assert again["has_more"] is False


def test_exclusive_after_switch_leaves_the_boundary_file_out(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """With after_inclusive off the filter is end_time > after."""
    files = emulator.add_files("AUTH_LOG", count=3)
    emulator.after_inclusive = False
    page = listing(emulator, client, after=files[1].end_time)
    assert [item["id"] for item in page["data"]] == [files[2].id]


def test_empty_page_has_a_null_last_end_time_unless_switched(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Nothing after `after`: data [], has_more false, last_end_time null (or `after` echoed)."""
    emulator.add_files("AUTH_LOG", count=2)
    late = "2027-01-01T00:00:00Z"
    assert listing(emulator, client, after=late) == {
        "data": [],
        "has_more": False,
        "last_end_time": None,
    }
    emulator.null_last_end_time_on_empty = False
    assert listing(emulator, client, after=late)["last_end_time"] == "2027-01-01T00:00:00.000000Z"


def test_watermark_mode_returns_a_last_end_time_later_than_every_file(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """In watermark mode the last page's last_end_time is the window end, not the last file."""
    files = emulator.add_files("AUTH_LOG", count=2)
    emulator.last_end_time_mode = "watermark"
    emulator.watermark = START + timedelta(hours=1)
    page = listing(emulator, client)
    assert page["data"][-1]["end_time"] == files[-1].end_time
    assert page["last_end_time"] == "2026-07-20T01:00:00.000000Z"


def test_files_sharing_an_end_time_are_all_listed(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Files may tie on end_time; the listing orders ties by id and returns each."""
    tie = START + timedelta(minutes=5)
    files = emulator.add_files("AUDIT_LOG", end_times=[tie, tie, tie])
    page = listing(emulator, client, "AUDIT_LOG")
    assert [item["id"] for item in page["data"]] == sorted(f.id for f in files)


def test_each_scope_lists_its_own_feeds(emulator: ComplianceEmulator, client: httpx.Client) -> None:
    """COSTS files live under organizations/org-..., the other types under workspaces/<uuid>."""
    costs = emulator.add_files("COSTS", count=2)
    codex = emulator.add_files("CODEX_LOG", count=1)
    assert [item["id"] for item in listing(emulator, client, "COSTS")["data"]] == [
        f.id for f in costs
    ]
    assert [item["id"] for item in listing(emulator, client, "CODEX_LOG")["data"]] == [codex[0].id]
    wrong_scope = client.get(list_url(emulator), params={"event_type": "COSTS", "after": AFTER})
    assert wrong_scope.json()["data"] == []


def test_listing_file_objects_carry_name_size_and_sha256(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """file_name, file_size and file_sha256 describe the body as served; sha256 can be off."""
    (log_file,) = emulator.add_files("APP_LOG", end_times=[START + timedelta(seconds=90)])
    (item,) = listing(emulator, client, "APP_LOG")["data"]
    body = emulator.body(log_file)
    assert item["file_name"] == "APP_LOG_2026-07-20T00:01:30+00:00.jsonl"
    assert item["end_time"] == "2026-07-20T00:01:30.000000Z"
    assert item["file_size"] == len(body)
    assert item["file_sha256"] == hashlib.sha256(body).hexdigest()
    emulator.include_sha256 = False
    assert "file_sha256" not in listing(emulator, client, "APP_LOG")["data"][0]


@pytest.mark.parametrize(
    ("path", "params", "status", "needle"),
    [
        ("workspaces/not-a-uuid", {}, 400, "workspace id"),
        ("organizations/acme", {}, 400, "organization id"),
        ("workspaces/00000000-0000-4000-8000-000000000000", {}, 404, "No workspace"),
        ("workspaces/{ws}", {"event_type": "NOPE"}, 400, "Invalid event_type"),
        ("workspaces/{ws}", {"event_type": None}, 400, "event_type"),
        ("workspaces/{ws}", {"event_type": "AUTH_LOG,APP_LOG"}, 400, "Exactly one"),
        ("workspaces/{ws}", {"after": "yesterday"}, 400, "ISO 8601"),
        ("workspaces/{ws}", {"after": "2026-07-20T00:00:00"}, 400, "time zone"),
        ("workspaces/{ws}", {"after": "2026-02-30T00:00:00Z"}, 400, "after"),
        ("workspaces/{ws}", {"after": None}, 400, "after"),
        ("workspaces/{ws}", {"limit": "many"}, 400, "limit"),
        ("workspaces/{ws}", {"limit": 101}, 422, "between 1 and 100"),
        ("workspaces/{ws}", {"limit": 0}, 422, "between 1 and 100"),
    ],
)
def test_bad_listing_requests_get_a_clear_error(
    emulator: ComplianceEmulator,
    client: httpx.Client,
    path: str,
    params: dict[str, Any],
    status: int,
    needle: str,
) -> None:
    """Malformed scope ids, event types, times and limits are refused with a message naming them."""
    defaults: dict[str, Any] = {"event_type": "AUTH_LOG", "after": AFTER, "limit": 10}
    query = {k: v for k, v in (defaults | params).items() if v is not None}
    url = f"{emulator.base_url}/{path.format(ws=emulator.workspace_id)}/logs"
    response = client.get(url, params=query)
    assert response.status_code == status
    assert needle in response.json()["error"]["message"]


def test_after_variants_the_peers_send_are_accepted(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Nanoseconds and offsets are read; an offset-less time is UTC when the switch says so."""
    files = emulator.add_files("AUTH_LOG", count=2)  # 00:05 and 00:10
    for after in ("2026-07-20T00:05:00.000000001Z", "2026-07-20T02:05:00+02:00"):
        assert listing(emulator, client, after=after)["data"][0]["id"] == files[0].id
    emulator.rules.naive_after_is_utc = True
    assert listing(emulator, client, after="2026-07-20T00:06:00")["data"][0]["id"] == files[1].id


def test_keys_are_checked_on_listing_and_download(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """No key or a wrong key: 401 (the key masked); a key without the grant: 403."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    query = {"event_type": "AUTH_LOG", "after": AFTER}
    for url in (list_url(emulator), f"{list_url(emulator)}/{log_file.id}"):
        assert httpx.get(url, params=query).status_code == 401
        wrong = httpx.get(
            url, params=query, headers={"Authorization": "Bearer sk-proj-wrong-key-1234"}
        )
        assert wrong.status_code == 401
        assert "sk-proj-wrong-key-1234" not in wrong.text
        refused = httpx.get(url, params=query, headers={"Authorization": "Bearer sk-proj-no-grant"})
        assert refused.status_code == 403
        assert "Compliance API read permission" in refused.json()["error"]["message"]


# download


def test_download_redirects_to_the_storage_port_which_needs_no_authorization(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """307 to another port; that URL alone serves the JSONL body the listing described."""
    (log_file,) = emulator.add_files("AUTH_LOG", records_per_file=8)
    location = signed_url(emulator, client, log_file)
    assert urlsplit(location).port == urlsplit(emulator.storage_url).port
    assert urlsplit(location).port != urlsplit(emulator.base_url).port
    response = httpx.get(location)
    assert response.status_code == 200
    (item,) = listing(emulator, client)["data"]
    assert hashlib.sha256(response.content).hexdigest() == item["file_sha256"]
    assert len(response.content) == item["file_size"]
    lines = response.content.splitlines()
    assert [orjson.loads(line) for line in lines] == emulator.file_records(log_file)


def test_storage_refuses_a_forwarded_authorization_header_unless_switched(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """A client that forwards the Bearer key to the signed URL gets a 400; the switch allows it."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    location = signed_url(emulator, client, log_file)
    refused = client.get(location)
    assert refused.status_code == 400
    assert b"<Code>InvalidArgument</Code>" in refused.content
    emulator.storage_rejects_authorization = False
    assert client.get(location).status_code == 200


def test_download_of_an_unknown_or_foreign_file_is_404(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """A file id not held, or held under the other scope, is not found."""
    (costs,) = emulator.add_files("COSTS")
    assert client.get(f"{list_url(emulator)}/{costs.id}").status_code == 404
    assert client.get(f"{list_url(emulator)}/eclf_{'0' * 32}").status_code == 404
    assert client.get(f"{list_url(emulator)}/../x").status_code == 404


def test_signed_url_expires_after_its_ttl_and_a_fresh_one_works(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Past url_ttl the storage answers 403 AuthenticationFailed; re-requesting the file works."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    emulator.url_ttl = 60
    location = signed_url(emulator, client, log_file)
    assert httpx.get(location).status_code == 200
    emulator.clock_skew = 61
    expired = httpx.get(location)
    assert expired.status_code == 403
    assert expired.headers["content-type"] == "application/xml"
    assert b"<Code>AuthenticationFailed</Code>" in expired.content
    assert b"Signed expiry time" in expired.content
    assert httpx.get(signed_url(emulator, client, log_file)).status_code == 200


def test_a_tampered_signed_url_is_refused(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Changing the expiry (or the file) in a signed URL breaks its signature: 403."""
    files = emulator.add_files("AUTH_LOG", count=2)
    location = signed_url(emulator, client, files[0])
    assert httpx.get(location.replace("se=2", "se=3", 1)).status_code == 403
    assert httpx.get(location.replace(files[0].id, files[1].id)).status_code == 403


def test_expired_url_fault_redirects_to_an_already_expired_url(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """The expired_url fault hands out one dead URL; the next download gets a live one."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    emulator.inject(ComplianceFault("expired_url", where="download"))
    assert httpx.get(signed_url(emulator, client, log_file)).status_code == 403
    assert httpx.get(signed_url(emulator, client, log_file)).status_code == 200
    assert emulator.stats.faults_served == {"download:expired_url": 1}


def test_checksum_fault_serves_bytes_that_miss_the_listed_sha256(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Same length, same records, another SHA-256 than file_sha256 says."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    (item,) = listing(emulator, client)["data"]
    emulator.inject(ComplianceFault("checksum", where="storage"))
    body = httpx.get(signed_url(emulator, client, log_file)).content
    assert len(body) == item["file_size"]
    assert hashlib.sha256(body).hexdigest() != item["file_sha256"]
    assert decode_stream(body) == emulator.file_records(log_file)


def test_concatenated_switch_glues_objects_without_newlines(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Bodies become JSON objects back to back; the listing's size and sha256 follow the switch."""
    (log_file,) = emulator.add_files("CODEX_LOG", records_per_file=4)
    emulator.concatenated = True
    (item,) = listing(emulator, client, "CODEX_LOG")["data"]
    body = httpx.get(signed_url(emulator, client, log_file)).content
    assert body.count(b"\n") == 1 and body.endswith(b"}\n")
    assert b"}{" in body
    assert hashlib.sha256(body).hexdigest() == item["file_sha256"]
    assert decode_stream(body) == emulator.file_records(log_file)


# data


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_gets_realistic_records(
    emulator: ComplianceEmulator, event_type: str
) -> None:
    """Records keep the sample's shape with their own ids, scope, times and varied users."""
    files = emulator.add_files(event_type, count=3, records_per_file=10, duplicate_ratio=0)
    records = emulator.records(event_type)
    assert len(records) == 30
    assert len({r["event_id"] for r in records}) == 30
    scope_id = files[0].scope[1]
    for log_file in files:
        mine = emulator.file_records(log_file)
        assert max(r["timestamp"] for r in mine) == log_file.end_time
        for record in mine:
            assert record["type"] == event_type
            assert record["principal"]["id"] == scope_id
            assert not any(key.startswith("_") for key in record)
    # COSTS is written by the SYSTEM actor; its user is the aggregate's identity.
    users = {
        json.dumps(r.get("payload", r)["identity" if "payload" in r else "actor"]) for r in records
    }
    assert len(users) > 5


def test_costs_repeat_about_three_percent_of_records_in_later_files(
    emulator: ComplianceEmulator,
) -> None:
    """A COSTS record repeated across files is identical; about 3 % of records are repeats."""
    files = emulator.add_files("COSTS", count=100, records_per_file=10)
    where: dict[str, set[str]] = {}
    content: dict[str, Json] = {}
    for log_file in files:
        for record in emulator.file_records(log_file):
            where.setdefault(record["event_id"], set()).add(log_file.id)
            assert content.setdefault(record["event_id"], record) == record
    repeats = 1000 - len(where)
    assert 10 <= repeats <= 60
    assert all(len(ids) >= 2 for ids in where.values() if len(ids) > 1)
    assert sum(len(ids) > 1 for ids in where.values()) > 0


def test_a_large_file_is_streamed_with_bounded_memory(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """A 24 MB CONVERSATION_MESSAGE file is listed and served without holding it in memory."""
    (log_file,) = emulator.add_files(
        "CONVERSATION_MESSAGE", records_per_file=400, record_bytes=60_000
    )
    tracemalloc.start()
    try:
        (item,) = listing(emulator, client, "CONVERSATION_MESSAGE")["data"]
        digest, size = hashlib.sha256(), 0
        with httpx.stream("GET", signed_url(emulator, client, log_file), timeout=30) as response:
            for chunk in response.iter_bytes():
                digest.update(chunk)
                size += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == item["file_size"] > 24_000_000
    assert digest.hexdigest() == item["file_sha256"]
    assert peak < 4_000_000, f"peak {peak} bytes while serving {size}"


# faults


@pytest.mark.parametrize("where", ["list", "download", "storage"])
@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504"])
def test_status_faults_replace_one_answer_then_recover(
    emulator: ComplianceEmulator, client: httpx.Client, where: str, kind: str
) -> None:
    """A status fault answers once at its place with that status; the retry succeeds."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    location = signed_url(emulator, client, log_file)
    emulator.inject(ComplianceFault(kind, where=where))  # type: ignore[arg-type]
    requests = {
        "list": lambda: client.get(
            list_url(emulator), params={"event_type": "AUTH_LOG", "after": AFTER}
        ),
        "download": lambda: client.get(f"{list_url(emulator)}/{log_file.id}"),
        "storage": lambda: httpx.get(location),
    }
    assert requests[where]().status_code == int(kind)
    assert requests[where]().status_code in (200, 307)
    assert emulator.stats.faults_served == {f"{where}:{kind}": 1}


@pytest.mark.parametrize("where", ["list", "storage"])
def test_429_carries_retry_after_only_when_asked(
    emulator: ComplianceEmulator, client: httpx.Client, where: str
) -> None:
    """Retry-After is sent when the fault names one, and absent otherwise."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    url = signed_url(emulator, client, log_file) if where == "storage" else None
    emulator.inject(ComplianceFault("429", where=where, retry_after="7"))  # type: ignore[arg-type]
    emulator.inject(ComplianceFault("429", where=where))  # type: ignore[arg-type]
    for expected in ("7", None):
        if url is None:
            response = client.get(
                list_url(emulator), params={"event_type": "AUTH_LOG", "after": AFTER}
            )
        else:
            response = httpx.get(url)
        assert response.status_code == 429
        assert response.headers.get("retry-after") == expected


def test_truncated_listing_is_cut_json(emulator: ComplianceEmulator, client: httpx.Client) -> None:
    """A truncated listing announces the full length and sends half: the client sees it cut."""
    emulator.add_files("AUTH_LOG", count=3)
    emulator.inject(ComplianceFault("truncated", where="list"))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(list_url(emulator), params={"event_type": "AUTH_LOG", "after": AFTER})
    assert len(listing(emulator, client)["data"]) == 3


def test_truncated_download_stops_mid_body_and_counts_nothing_served(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """A truncated body ends early (an incomplete read); it is not counted as served."""
    (log_file,) = emulator.add_files("APP_LOG", records_per_file=50)
    location = signed_url(emulator, client, log_file)
    emulator.inject(ComplianceFault("truncated", where="storage"))
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError), httpx.stream("GET", location) as response:
        for chunk in response.iter_bytes():
            received += chunk
    assert 0 < len(received) < len(emulator.body(log_file))
    assert emulator.stats.files_served == 0
    assert httpx.get(location).status_code == 200
    assert emulator.stats.records_served == {"APP_LOG": 50}


@pytest.mark.parametrize("where", ["list", "download", "storage"])
def test_reset_drops_the_connection_without_an_answer(
    emulator: ComplianceEmulator, client: httpx.Client, where: str
) -> None:
    """reset closes the connection at once; the next request is answered."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    location = signed_url(emulator, client, log_file)
    emulator.inject(ComplianceFault("reset", where=where))  # type: ignore[arg-type]
    url = {
        "list": f"{list_url(emulator)}?event_type=AUTH_LOG&after={AFTER}",
        "download": f"{list_url(emulator)}/{log_file.id}",
        "storage": location,
    }[where]
    headers = {} if where == "storage" else {"Authorization": f"Bearer {KEY}"}
    with pytest.raises(httpx.TransportError):
        httpx.get(url, headers=headers)
    assert httpx.get(url, headers=headers).status_code in (200, 307)


@pytest.mark.parametrize("where", ["list", "storage"])
def test_timeout_fault_trips_a_short_client_timeout(
    emulator: ComplianceEmulator, client: httpx.Client, where: str
) -> None:
    """timeout holds the answer past a short client timeout; the next request is prompt."""
    (log_file,) = emulator.add_files("AUTH_LOG")
    location = signed_url(emulator, client, log_file)
    emulator.inject(ComplianceFault("timeout", where=where, delay=2.0))  # type: ignore[arg-type]
    url = f"{list_url(emulator)}?event_type=AUTH_LOG&after={AFTER}" if where == "list" else location
    headers = {} if where == "storage" else {"Authorization": f"Bearer {KEY}"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(url, headers=headers, timeout=0.2)
    assert httpx.get(url, headers=headers, timeout=5).status_code == 200


def test_concatenated_listing_fault_sends_two_json_documents(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """The listing body arrives as the same document twice, newline separated (XSIAM's claim)."""
    emulator.add_files("AUTH_LOG")
    emulator.inject(ComplianceFault("concatenated"))
    response = client.get(list_url(emulator), params={"event_type": "AUTH_LOG", "after": AFTER})
    first, second = decode_stream(response.content)
    assert first == second and len(first["data"]) == 1


def test_a_fault_aimed_at_one_file_spares_the_others(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """file_id narrows a download or storage fault to that file."""
    files = emulator.add_files("AUTH_LOG", count=2)
    emulator.inject(ComplianceFault("503", where="download", file_id=files[1].id))
    assert client.get(f"{list_url(emulator)}/{files[0].id}").status_code == 307
    assert client.get(f"{list_url(emulator)}/{files[1].id}").status_code == 503


def test_files_for_a_malformed_scope_id_are_refused(emulator: ComplianceEmulator) -> None:
    """add_files names a scope id the API would reject instead of serving an unreachable feed."""
    for bad in ("../etc", "not-a-uuid"):
        with pytest.raises(ValueError, match="Invalid workspace id"):
            emulator.add_files("AUTH_LOG", scope_id=bad)


def test_faults_reject_places_they_do_not_apply_to() -> None:
    """expired_url is a download fault, checksum a storage fault; anything else is refused."""
    with pytest.raises(ValueError, match="download"):
        ComplianceFault("expired_url", where="list")
    with pytest.raises(ValueError, match="storage"):
        ComplianceFault("checksum", where="download")
    with pytest.raises(ValueError, match="unknown fault kind"):
        ComplianceFault("418")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="place"):
        ComplianceFault("500", where="dns")  # type: ignore[arg-type]


def test_probabilistic_faults_fire_on_some_requests(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """A fault with a probability keeps firing on a share of requests until cleared."""
    emulator.inject(ComplianceFault("500", probability=0.5))
    query = {"event_type": "AUTH_LOG", "after": AFTER}
    statuses = Counter(client.get(list_url(emulator), params=query).status_code for _ in range(40))
    assert statuses[500] > 5 and statuses[200] > 5
    emulator.clear_faults()
    assert client.get(list_url(emulator), params=query).status_code == 200


# stats, truth, control


def test_stats_and_served_records_are_the_truth_for_tests(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """Request counters by kind, records served per event type, and which records went out."""
    auth = emulator.add_files("AUTH_LOG", count=2, records_per_file=3)
    emulator.add_files("APP_LOG", count=1, records_per_file=4)
    listing(emulator, client)
    httpx.get(signed_url(emulator, client, auth[0]))
    stats = emulator.stats
    assert (stats.list_requests, stats.download_requests, stats.storage_requests) == (1, 1, 1)
    assert stats.requests == 3
    assert stats.records_served == {"AUTH_LOG": 3}
    assert stats.files_served == 1
    assert stats.responses_by_status == {200: 2, 307: 1}
    assert emulator.served_records("AUTH_LOG") == emulator.file_records(auth[0])
    assert emulator.served_records("APP_LOG") == []


def test_control_api_adds_files_injects_faults_and_reports_stats(
    emulator: ComplianceEmulator, client: httpx.Client
) -> None:
    """/_emulator/files, /_emulator/faults and /_emulator/stats drive the emulator over HTTP."""
    control = emulator.base_url.removesuffix("/v1/compliance") + "/_emulator"
    added = httpx.post(
        f"{control}/files",
        json={"event_type": "AUTH_LOG", "count": 2, "start": "2026-07-20T00:00:00+00:00"},
    )
    assert len(added.json()["added"]) == 2
    assert httpx.post(f"{control}/faults", json={"kind": "502"}).status_code == 200
    query = {"event_type": "AUTH_LOG", "after": AFTER}
    assert client.get(list_url(emulator), params=query).status_code == 502
    assert httpx.delete(f"{control}/faults").status_code == 200
    assert len(listing(emulator, client)["data"]) == 2
    stats = httpx.get(f"{control}/stats").json()
    assert stats["faults_served"] == {"list:502": 1}
    assert httpx.post(f"{control}/faults", json={"kind": "nope"}).status_code == 400
    assert httpx.get(f"{control}/nothing").status_code == 404


def test_stop_ends_a_request_held_by_a_timeout_fault() -> None:
    """stop() wakes a handler held by a long timeout fault: the client sees a hang-up, not a wait."""
    emu = ComplianceEmulator(api_key=KEY).start()
    emu.inject(ComplianceFault("timeout", delay=60))
    url = f"{list_url(emu)}?event_type=AUTH_LOG&after={AFTER}"
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
        except httpx.TransportError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    for _ in range(200):  # bounded: until the request is being held
        if emu.stats.faults_served:
            break
        time.sleep(0.01)
    emu.stop()
    emu.stop()  # twice is fine
    caller.join(timeout=20)
    assert not caller.is_alive()
    assert len(outcome) == 1
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url
