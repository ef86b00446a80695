"""`read_actor` reads the documented actor shapes into fields and keeps whatever else it finds."""

from __future__ import annotations

from shipper.model.event import read_actor


def test_the_documented_actor_shapes_are_read_and_anything_else_kept_in_extra() -> None:
    """Sessions and API keys fill the actor's fields; a value of another shape or an undeclared
    key is kept in `extra` as sent, never dropped."""
    session = {
        "type": "session",
        "session": {
            "user": {"id": "user-1", "email": "a@example.com"},
            "ip_address": "10.0.0.1",
            "user_agent": "curl",
            "ja3": "j3",
            "ja4": "j4",
            "ip_address_details": {"country": "US"},
        },
    }
    got = read_actor(session)
    assert (got.user_id, got.ip, got.ja4, got.geo, got.extra) == (
        "user-1", "10.0.0.1", "j4", {"country": "US"}, {},
    )  # fmt: skip
    key = {
        "type": "api_key",
        "api_key": {"id": "key-1", "type": "service_account", "service_account": {"id": "svc-1"}},
    }
    got = read_actor(key)
    assert (got.api_key_id, got.api_key_kind, got.service_account_id, got.extra) == (
        "key-1", "service_account", "svc-1", {},
    )  # fmt: skip
    odd = {"type": "api_key", "api_key": {"id": 7, "user": "u", "note": "n"}, "extra": 1}
    assert read_actor(odd).extra == {"note": "n", "id": 7, "user": "u", "extra": 1}
