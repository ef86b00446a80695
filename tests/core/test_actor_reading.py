"""`read_actor` skips its `extra` bookkeeping for the common shapes, and that shortcut changes
nothing: for any actor, well-formed or not, it reads exactly what the plain reading (kept here as
the reference, as it stood before the shortcut) reads."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.model.event import Actor, JsonDict, read_actor

# -- the reference: every key checked one by one ---------------------------------------------

_USER_KEYS = frozenset({"id", "email"})
_SESSION_KEYS = frozenset({"user", "ip_address", "user_agent", "ja3", "ja4", "ip_address_details"})
_API_KEY_KEYS = frozenset({"id", "type", "user", "service_account"})


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> JsonDict:
    return value if isinstance(value, dict) else {}


def _rest(obj: JsonDict, known: frozenset[str]) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in known}


def _unexpected(obj: JsonDict, keys: tuple[str, ...], kind: type) -> JsonDict:
    return {k: obj[k] for k in keys if obj.get(k) is not None and not isinstance(obj[k], kind)}


def _read_user(actor: Actor, user: JsonDict) -> None:
    actor.user_id = _str(user.get("id"))
    actor.user_email = _str(user.get("email"))
    extra = _rest(user, _USER_KEYS) | _unexpected(user, ("id", "email"), str)
    if extra:
        actor.extra["user"] = extra


def _read_session(actor: Actor, session: JsonDict) -> None:
    _read_user(actor, _dict(session.get("user")))
    actor.ip = _str(session.get("ip_address"))
    actor.user_agent = _str(session.get("user_agent"))
    actor.ja3 = _str(session.get("ja3"))
    actor.ja4 = _str(session.get("ja4"))
    actor.geo = _dict(session.get("ip_address_details"))
    actor.extra.update(_rest(session, _SESSION_KEYS))
    actor.extra.update(_unexpected(session, ("ip_address", "user_agent", "ja3", "ja4"), str))
    actor.extra.update(_unexpected(session, ("user", "ip_address_details"), dict))


def _read_api_key(actor: Actor, key: JsonDict) -> None:
    actor.api_key_id = _str(key.get("id"))
    actor.api_key_kind = _str(key.get("type"))
    _read_user(actor, _dict(key.get("user")))
    actor.service_account_id = _str(_dict(key.get("service_account")).get("id"))
    actor.extra.update(_rest(key, _API_KEY_KEYS))
    actor.extra.update(_unexpected(key, ("id", "type"), str))
    actor.extra.update(_unexpected(key, ("user", "service_account"), dict))


def reference_read_actor(raw: Any) -> Actor:
    if not isinstance(raw, dict):
        return Actor()
    kind = _str(raw.get("type"))
    actor = Actor(kind=kind)
    detail = raw.get(kind) if kind else None
    if kind == "session":
        _read_session(actor, _dict(detail))
    elif kind == "api_key":
        _read_api_key(actor, _dict(detail))
    elif detail is not None:
        actor.extra[kind or "detail"] = detail
    if extra := {k: v for k, v in raw.items() if k not in ("type", kind)}:
        actor.extra.update(extra)
    return actor


# -- actors: mostly the documented shapes, with any key missing, of another shape, or added --

ANY = (
    st.none()
    | st.text(max_size=4)
    | st.integers(-3, 3)
    | st.booleans()
    | st.lists(st.text(max_size=2), max_size=2)
)
VALUE = st.recursive(ANY, lambda inner: st.dictionaries(st.sampled_from(["id", "email", "x"]), inner, max_size=3), max_leaves=4)  # fmt: skip
TEXT = st.text(max_size=6) | VALUE


def shaped(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[JsonDict]:
    """Any subset of the declared fields (each of its shape or not), plus undeclared keys."""
    declared = st.fixed_dictionaries({}, optional=fields)
    added = st.dictionaries(
        st.sampled_from(["extra", "id", "type", "session", "api_key"]), VALUE, max_size=2
    )
    return st.tuples(declared, added).map(lambda parts: {**parts[1], **parts[0]} if parts[1] else parts[0])  # fmt: skip


USER = shaped({"id": TEXT, "email": TEXT}) | VALUE
SESSION = shaped({
    "user": USER, "ip_address": TEXT, "user_agent": TEXT, "ja3": TEXT, "ja4": TEXT,
    "ip_address_details": shaped({"country": TEXT, "asn": TEXT}) | VALUE,
})  # fmt: skip
API_KEY = shaped({
    "id": TEXT, "type": st.sampled_from(["user", "service_account"]) | VALUE,
    "user": USER, "service_account": shaped({"id": TEXT}) | VALUE,
})  # fmt: skip
KIND = st.sampled_from(["session", "api_key", "workload_identity", "type"]) | VALUE
ACTOR = (
    st.builds(lambda detail: {"type": "session", "session": detail}, SESSION)
    | st.builds(lambda detail: {"type": "api_key", "api_key": detail}, API_KEY)
    | shaped({"type": KIND, "session": SESSION, "api_key": API_KEY, "workload_identity": VALUE})
    | VALUE
)


@settings(max_examples=600)
@given(ACTOR)
def test_the_shortcut_reads_every_actor_as_the_reference_does(raw: Any) -> None:
    assert read_actor(raw) == reference_read_actor(raw)


def test_the_documented_shapes_take_the_shortcut_and_still_read_everything() -> None:
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
