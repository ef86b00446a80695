"""The event model: the API object as received, and its normalized reading.

`AuditEvent` is what flows through the pipeline. It keeps the API object untouched, so nothing
the API sends is ever lost, and computes the normalized reading only when a renderer asks for it.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from dataclasses import dataclass, field
from typing import Any

import orjson

JsonDict = dict[str, Any]

# Top-level keys of an AuditLog object that the model reads; anything else is kept as `extra`.
_DECLARED_TOP_LEVEL = frozenset({"id", "object", "type", "effective_at", "actor", "project"})


class AuditEvent:
    """One audit-log entry as listed by the API, plus the organization label from config.

    The API object is held either as a dict (`raw=`, what `from_api` keeps) or as its JSON bytes
    (`json=`, what the source keeps: the bytes exactly as the API sent them, a fifth of the
    memory of the decoded dicts, and nothing for the garbage collector to walk). `raw` and
    `json` give either form; `raw` decodes on every access of a bytes-held event, so a renderer
    reads it once. Treat an event as immutable: it is shared by every sink.
    """

    # A plain slotted class, not a frozen dataclass: the source builds one per event, and a
    # frozen dataclass's constructor costs twice as much.
    __slots__ = ("_json", "_obj", "effective_at", "id", "organization", "type")

    # Which kind of source produced the event: renderers choose their mapping by it. A class
    # attribute, so it costs no memory per event; each source's subclass overrides it.
    source_type: str = "audit_log"

    id: str
    type: str
    effective_at: int
    organization: str | None
    _obj: JsonDict | None
    _json: bytes | None

    def __init__(
        self,
        id: str,
        type: str,
        effective_at: int,
        raw: JsonDict | None = None,
        organization: str | None = None,
        *,
        json: bytes | None = None,
    ) -> None:
        if (raw is None) == (json is None):
            raise TypeError("AuditEvent needs exactly one of raw= and json=")
        self.id = id
        self.type = type
        self.effective_at = effective_at
        self.organization = organization
        self._obj = raw
        self._json = json

    def __repr__(self) -> str:
        return f"AuditEvent(id={self.id!r}, type={self.type!r}, effective_at={self.effective_at})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AuditEvent):
            return NotImplemented
        return (self.id, self.type, self.effective_at, self.organization, self.raw) == (
            other.id,
            other.type,
            other.effective_at,
            other.organization,
            other.raw,
        )

    __hash__ = None  # type: ignore[assignment]  # equal events may hold different forms

    @classmethod
    def from_api(
        cls, obj: JsonDict, organization: str | None = None, *, compact: bool = False
    ) -> AuditEvent:
        """Build from an API object; raises `ValueError` naming the problem if it lacks an id.

        `compact` keeps only the object's JSON bytes (`obj` must be JSON-encodable: it is, when
        it came from a parsed response).
        """
        event_id = obj.get("id")
        if not isinstance(event_id, str) or not event_id:
            raise ValueError("audit-log entry without a string 'id'")
        effective_at = obj.get("effective_at")
        if isinstance(effective_at, bool) or not isinstance(effective_at, int | float):
            raise ValueError(f"audit-log entry {event_id!r} has no numeric 'effective_at'")
        return cls(
            event_id,
            intern_type(obj.get("type")),
            int(effective_at),
            None if compact else obj,
            organization,
            json=compact_json(obj) if compact else None,
        )

    @property
    def raw(self) -> JsonDict:
        """The API object (a fresh dict per access when the event is held as bytes)."""
        if self._obj is not None:
            return self._obj
        decoded: JsonDict = orjson.loads(self._json)  # type: ignore[arg-type]
        return decoded

    @property
    def json(self) -> bytes:
        """The API object as compact JSON; `TypeError`/`ValueError` if a dict cannot be encoded."""
        if self._json is not None:
            return self._json
        return orjson.dumps(self._obj)

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.effective_at, self.id)

    @property
    def timestamp(self) -> str:
        """`effective_at` as RFC 3339 UTC, e.g. 2024-07-12T17:09:50Z."""
        return rfc3339(self.effective_at)

    @property
    def payload(self) -> Any:
        """The type-keyed object (the API puts each type's details under a key equal to the type)."""
        return self.raw.get(self.type)


def intern_type(value: Any) -> str:
    """The event type as a shared string (145 types over millions of events); "unknown" if absent."""
    return sys.intern(value) if isinstance(value, str) else "unknown"


def compact_json(obj: Any) -> bytes:
    """`orjson.dumps(obj)` in a bytes object of its own size.

    orjson hands back its 4 KiB working buffer with the length set, not trimmed: kept for long
    (a window of events, an emulator's store), each would cost six times its JSON.
    """
    return memoryview(orjson.dumps(obj)).tobytes()


def rfc3339(seconds: int) -> str:
    """`seconds` since the epoch as RFC 3339 UTC, e.g. 2024-07-12T17:09:50Z.

    Renderers call this for every event: the date is looked up per day and the time of day is
    plain arithmetic (three times faster than `strftime`).
    """
    day, rest = divmod(int(seconds), 86_400)
    return f"{_utc_date(day)}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}Z"


def rfc3339_ms(ms: int) -> str:
    """`ms` milliseconds since the epoch as RFC 3339 UTC: 2024-07-12T17:09:50Z for a whole
    second (what `rfc3339` writes), else with three fractional digits, 2024-07-12T17:09:50.123Z."""
    seconds, fraction = divmod(ms, 1000)
    text = rfc3339(seconds)
    return f"{text[:-1]}.{fraction:03d}Z" if fraction else text


@functools.lru_cache(maxsize=1024)
def _utc_date(day: int) -> str:
    return (_EPOCH + dt.timedelta(days=day)).strftime("%Y-%m-%d")


_EPOCH = dt.date(1970, 1, 1)


def split_type(event_type: str) -> tuple[str, str]:
    """`role.assignment.created` -> (`role.assignment`, `created`); a dotless type is its own action."""
    target, _, action = event_type.rpartition(".")
    return (target or event_type, action)


def outcome_of(event_type: str) -> str:
    return "failure" if event_type.endswith(".failed") else "success"


@dataclass(slots=True)
class Actor:
    """Who acted. `kind` is the API's actor type, kept verbatim even when it is new to us."""

    kind: str | None = None
    user_id: str | None = None
    user_email: str | None = None
    api_key_id: str | None = None
    api_key_kind: str | None = None
    service_account_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    ja3: str | None = None
    ja4: str | None = None
    geo: JsonDict = field(default_factory=dict)
    extra: JsonDict = field(default_factory=dict)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> JsonDict:
    return value if isinstance(value, dict) else {}


def _rest(obj: JsonDict, known: frozenset[str]) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in known}


_USER_KEYS = frozenset({"id", "email"})
_SESSION_KEYS = frozenset({"user", "ip_address", "user_agent", "ja3", "ja4", "ip_address_details"})
_API_KEY_KEYS = frozenset({"id", "type", "user", "service_account"})


def _unexpected(obj: JsonDict, keys: tuple[str, ...], kind: type) -> JsonDict:
    """Declared keys whose value has an unexpected shape: kept verbatim rather than dropped."""
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


def read_actor(raw: Any) -> Actor:
    """Read any actor shape; unknown kinds keep their whole sub-object in `extra`."""
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
    actor.extra.update({k: v for k, v in raw.items() if k not in ("type", kind)})
    return actor


_GEO_FIELDS = ("country", "city", "region", "region_code", "asn", "latitude", "longitude")
_GEO_KEYS = tuple((f"actor_geo_{name}", name) for name in _GEO_FIELDS)
_GEO_KNOWN = frozenset(_GEO_FIELDS)


def normalize(event: AuditEvent) -> JsonDict:
    """The documented flat `normalized` shape (docs/formats.md, "normalized").

    Keys whose value would be null are left out; nothing the API sent is dropped: the payload is
    kept whole, unknown actor fields go to `actor_extra`, undeclared top-level fields to `extra`.
    """
    raw = event.raw
    target_type, action = split_type(event.type)
    payload = raw.get(event.type)
    actor = read_actor(raw.get("actor"))
    project = _dict(raw.get("project"))
    doc: JsonDict = {
        "id": event.id,
        "type": event.type,
        "category": target_type,
        "action": action,
        "outcome": outcome_of(event.type),
        "effective_at": event.effective_at,
        "timestamp": event.timestamp,
        "organization": event.organization,
        "actor_kind": actor.kind,
        "actor_user_id": actor.user_id,
        "actor_user_email": actor.user_email,
        "actor_api_key_id": actor.api_key_id,
        "actor_api_key_kind": actor.api_key_kind,
        "actor_service_account_id": actor.service_account_id,
        "actor_ip": actor.ip,
        "actor_user_agent": actor.user_agent,
        "actor_ja3": actor.ja3,
        "actor_ja4": actor.ja4,
        "project_id": _str(project.get("id")),
        "project_name": _str(project.get("name")),
        "target_type": target_type,
        "target_id": _str(_dict(payload).get("id")),
    }
    if geo := actor.geo:  # API-key actors have none: skip seven lookups
        for key, name in _GEO_KEYS:
            doc[key] = geo.get(name)
    doc["payload"] = payload
    if actor.extra:
        doc["actor_extra"] = actor.extra
    if geo and not geo.keys() <= _GEO_KNOWN:
        doc["actor_geo_extra"] = _rest(geo, _GEO_KNOWN)
    if extra := {k: v for k, v in raw.items() if k not in _DECLARED_TOP_LEVEL and k != event.type}:
        doc["extra"] = extra
    return {k: v for k, v in doc.items() if v is not None}


class ComplianceRecord(AuditEvent):
    """One record of a ChatGPT Compliance Logs Platform file (`source_type` "chatgpt_compliance").

    `id` is the record's `event_id` (the de-duplication key), `type` its `type` (the file's
    event type), and `effective_at` the whole second of the `end_time` of the file it was read
    from: the listing's cursor, so windows and sink cursors work on files as they do on audit
    events. The record's own `timestamp` stays in the record, where renderers read it, and
    `shipper.render.occurred_ms` reads it for the sinks that stamp a time of their own.
    """

    __slots__ = ()
    source_type = "chatgpt_compliance"

    def __repr__(self) -> str:
        return (
            f"ComplianceRecord(id={self.id!r}, type={self.type!r}, "
            f"effective_at={self.effective_at})"
        )
