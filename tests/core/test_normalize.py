"""Normalization keeps everything the API sent, for every actor shape and unknown types."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shipper.model.event import AuditEvent, normalize

SESSION = {
    "id": "audit_log-1",
    "object": "organization.audit_log",
    "type": "api_key.updated",
    "effective_at": 1720804190,
    "actor": {
        "type": "session",
        "session": {
            "user": {"id": "user-xxx", "email": "user@example.com"},
            "ip_address": "127.0.0.1",
            "user_agent": "Mozilla/5.0",
            "ja3": "a497151ce4338a12c4418c44d375173e",
            "ja4": "q13d0313h3_55b375c5d22e_c7319ce65786",
            "ip_address_details": {"country": "US", "city": "San Francisco", "asn": "1234"},
        },
    },
    "api_key.updated": {"id": "key_xxxx", "changes_requested": {"scopes": ["a.b"]}},
}


def test_session_actor_is_flattened() -> None:
    """A session actor's user, ip, user agent, TLS fingerprints and geo become flat fields."""
    doc = normalize(AuditEvent.from_api(SESSION, organization="acme"))
    assert doc["timestamp"] == "2024-07-12T17:09:50Z"
    assert (doc["category"], doc["action"], doc["outcome"]) == ("api_key", "updated", "success")
    assert doc["actor_kind"] == "session" and doc["actor_user_email"] == "user@example.com"
    assert doc["actor_ip"] == "127.0.0.1" and doc["actor_ja4"].startswith("q13")
    assert doc["actor_geo_city"] == "San Francisco" and doc["actor_geo_asn"] == "1234"
    assert doc["target_id"] == "key_xxxx" and doc["payload"]["changes_requested"] == {
        "scopes": ["a.b"]
    }
    assert doc["organization"] == "acme"


def test_service_account_api_key_actor() -> None:
    """An API key of a service account yields the key id and the service account id."""
    raw = {
        **SESSION,
        "actor": {
            "type": "api_key",
            "api_key": {
                "id": "key_1",
                "type": "service_account",
                "service_account": {"id": "svc_1"},
            },
        },
    }
    doc = normalize(AuditEvent.from_api(raw))
    assert (doc["actor_kind"], doc["actor_api_key_id"], doc["actor_service_account_id"]) == (
        "api_key",
        "key_1",
        "svc_1",
    )
    assert doc["actor_api_key_kind"] == "service_account"


@pytest.mark.parametrize("actor", [None, "absent"])
def test_null_or_absent_actor(actor: Any) -> None:
    """A null or missing actor is not an error; actor fields are simply absent."""
    raw = dict(SESSION)
    if actor == "absent":
        del raw["actor"]
    else:
        raw["actor"] = None
    doc = normalize(AuditEvent.from_api(raw))
    assert not any(k.startswith("actor_") for k in doc)


def test_unknown_type_and_actor_kind_and_fields_are_kept() -> None:
    """New event types, actor kinds and undeclared fields pass through with everything kept."""
    raw = {
        "id": "x",
        "type": "future_feature.enabled",
        "effective_at": 1,
        "actor": {"type": "robot", "robot": {"id": "r1", "model": "t-800"}},
        "future_feature.enabled": {"id": "ff", "data": {"k": 1}},
        "brand_new_field": {"a": 1},
    }
    doc = normalize(AuditEvent.from_api(raw))
    assert doc["actor_kind"] == "robot" and doc["actor_extra"] == {
        "robot": {"id": "r1", "model": "t-800"}
    }
    assert doc["extra"] == {"brand_new_field": {"a": 1}}
    assert doc["payload"] == {"id": "ff", "data": {"k": 1}} and doc["action"] == "enabled"


def test_failed_types_are_failures() -> None:
    """login.failed / logout.failed (any *.failed) have outcome failure."""
    doc = normalize(AuditEvent.from_api({**SESSION, "type": "login.failed"}))
    assert doc["outcome"] == "failure"


@given(
    st.dictionaries(
        st.text(max_size=10),
        st.none() | st.text() | st.integers(-10, 10) | st.lists(st.text()),
        max_size=6,
    )
)
def test_any_actor_shape_normalizes(actor: dict[str, Any]) -> None:
    """Arbitrary actor objects never crash normalization."""
    normalize(AuditEvent.from_api({**SESSION, "actor": actor}))


def test_entry_without_id_is_refused() -> None:
    """An entry without an id cannot be tracked, so building it raises ValueError."""
    with pytest.raises(ValueError, match="id"):
        AuditEvent.from_api({"type": "x", "effective_at": 1})


def test_declared_fields_of_unexpected_shape_are_kept() -> None:
    """A declared field with the wrong JSON type (a list for an IP, a string for geo) is kept in actor_extra."""
    raw = {
        **SESSION,
        "actor": {
            "type": "session",
            "session": {"ip_address": ["1.2.3.4"], "ip_address_details": "US"},
        },
    }
    doc = normalize(AuditEvent.from_api(raw))
    assert doc["actor_extra"] == {"ip_address": ["1.2.3.4"], "ip_address_details": "US"}
    assert "actor_ip" not in doc
