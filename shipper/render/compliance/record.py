"""One compliance record read once, defensively, for every rendering.

Every field of a record is optional and every enum open: a value of the wrong JSON type, or `""`
(the platform's way of saying "absent" in `request_metadata`), reads as absent. The record
itself is never changed; each rendering keeps it (or its unmapped part) whole.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from shipper.model.event import AuditEvent, JsonDict, rfc3339
from shipper.render.compliance.types import TypeInfo, type_info
from shipper.render.fields import Geo, IPAddress, clean_text, parse_geo, read_ip

Outcome = Literal["success", "failure", "unknown"]
TimeSource = Literal["timestamp", "message.created_at", "payload.hour", "file"]

# Keys every record type may carry around its type-specific content.
ENVELOPE = frozenset(
    {
        "event_id",
        "type",
        "timestamp",
        "principal",
        "actor",
        "request_metadata",
        "workspace_id",
        "client_id",
        "event_type",
    }
)
# Where a type names what happened (EVENT-TYPES §4); unknown types try every place in turn.
_ACTION_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "AUDIT_LOG": (("action",),),
    "AUTH_LOG": (("action_data", "action"),),
    "APP_AUTH_LOG": (("action",),),
    "APP_LOG": (("log_type",),),
    "CONVERSATION_MESSAGE": (("message", "author", "type"),),
}
_ANY_ACTION = (
    ("event_type",),
    ("action",),
    ("action_data", "action"),
    ("event_details", "detail_type"),
    ("log_type",),
)
_SUCCESS = frozenset({"success", "succeeded", "successful", "completed", "complete", "ok"})
_FAILURE = frozenset({"error", "failed", "failure", "fail", "blocked", "denied", "timeout"})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)


def dig(obj: Any, *path: str) -> Any:
    """`obj[path[0]][path[1]]...`, or None where a step is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def text(obj: Any, *path: str) -> str | None:
    """The non-empty string at `path` (edge spaces trimmed), else None."""
    return clean_text(dig(obj, *path))


def as_dict(value: Any) -> JsonDict:
    return value if isinstance(value, dict) else {}


def integer(value: Any) -> int | None:
    """A JSON integer (not a bool); integral numeric strings too (the platform sends `"100"`)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value) < 19:
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, for every `actor.type` (ACCOUNT_USER, API_KEY, AGENT, SYSTEM, or a new one).

    An AGENT acts for its delegator: `user_id`/`user_email` are the delegator's, as Elastic
    reads them, and `delegated` says so.
    """

    kind: str | None = None
    user_id: str | None = None
    user_email: str | None = None
    api_key_id: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    agent_product_id: str | None = None
    system_id: str | None = None
    delegated: bool = False

    @property
    def label(self) -> str | None:
        """The best single name for who acted."""
        return (
            self.user_email or self.user_id or self.api_key_id or self.agent_name or self.system_id
        )


def read_actor(raw: Any) -> Actor:
    if not isinstance(raw, dict):
        return Actor()
    kind = text(raw, "type")
    delegator = dig(raw, "agent_runtime", "delegator")
    user = delegator if kind == "AGENT" and isinstance(delegator, dict) else raw
    return Actor(
        kind=kind,
        user_id=text(user, "user_id"),
        user_email=text(user, "user_email"),
        api_key_id=text(raw, "redacted_id"),
        agent_id=text(raw, "id") if kind == "AGENT" else None,
        agent_name=text(raw, "name") if kind == "AGENT" else None,
        agent_product_id=text(raw, "product_id") if kind == "AGENT" else None,
        system_id=text(raw, "id") if kind not in ("AGENT", "ACCOUNT_USER", "API_KEY") else None,
        delegated=user is not raw,
    )


@dataclass(frozen=True, slots=True)
class Network:
    """`request_metadata` (or, for APP_LOG requests, the client context in `input._meta`)."""

    ip: IPAddress | None = None
    ip_text: str | None = None  # canonical form of `ip`
    raw_ip: str | None = None  # as sent, also when it is not an address
    geo: Geo = field(default_factory=Geo)
    user_agent: str | None = None
    ja3: str | None = None
    ja4: str | None = None
    destination: str | None = None


def _geo(details: Any) -> Geo:
    if isinstance(details, dict):
        details = {k: v for k, v in details.items() if v != ""}
    return parse_geo(details or None)


def read_network(raw: JsonDict) -> Network:
    meta = raw.get("request_metadata")
    if isinstance(meta, dict):
        raw_ip = text(meta, "client_ip")
        ip, ip_text = read_ip(raw_ip)
        return Network(
            ip=ip,
            ip_text=ip_text,
            raw_ip=raw_ip,
            geo=_geo(meta.get("client_ip_details")),
            user_agent=text(meta, "client_user_agent"),
            ja3=text(meta, "client_ja3"),
            ja4=text(meta, "client_ja4"),
            destination=text(meta, "destination_hostname"),
        )
    app_meta = dig(raw, "input", "_meta")
    if isinstance(app_meta, dict):
        # ChatGPT passes the caller's context to the app; Elastic maps it to the source too.
        location = app_meta.get("openai/userLocation")
        return Network(geo=_geo(location), user_agent=text(app_meta, "openai/userAgent"))
    return Network()


def parse_time(value: Any) -> dt.datetime | None:
    """An ISO-8601 time as aware UTC (no zone: UTC); None when it does not parse."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        return None


def _hour_bucket(payload: Any) -> dt.datetime | None:
    """COSTS without a timestamp: the last second of its `day` + `hour` bucket (gram's rule)."""
    day, hour = text(payload, "day"), dig(payload, "hour")
    if not day or isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        return None
    return parse_time(f"{day}T{hour:02d}:59:59Z") if len(day) == 10 else None


def _format(moment: dt.datetime) -> str:
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


def _own_time(raw: JsonDict) -> tuple[TimeSource, dt.datetime] | None:
    """The record's own time and where it came from: its `timestamp`, else the message's
    `created_at`, else the COSTS hour bucket; None when it has none of them."""
    if (moment := parse_time(raw.get("timestamp"))) is not None:
        return "timestamp", moment
    if (moment := parse_time(dig(raw, "message", "created_at"))) is not None:
        return "message.created_at", moment
    if (moment := _hour_bucket(raw.get("payload"))) is not None:
        return "payload.hour", moment
    return None


def event_time(event: AuditEvent, raw: JsonDict) -> tuple[str, int, TimeSource]:
    """(RFC 3339 UTC, epoch milliseconds, where it came from): the record's `timestamp`, else
    the message's `created_at`, else the COSTS hour bucket, else the file's end time."""
    found = _own_time(raw)
    if found is None:
        return rfc3339(event.effective_at), event.effective_at * 1000, "file"
    source, moment = found
    return _format(moment), (moment - _EPOCH) // _MS, source


def occurred_ms(event: AuditEvent) -> int:
    """`event_time`'s milliseconds, reading the record once and formatting nothing: the time a
    sink stamps on a record (`shipper.render.occurred_ms`). Never raises for a record whose JSON
    is not an object (its file's end time, as every rendering says)."""
    raw = event.raw
    found = _own_time(raw) if isinstance(raw, dict) else None
    if found is None:
        return event.effective_at * 1000
    return (found[1] - _EPOCH) // _MS


def _action(record_type: str, raw: JsonDict) -> str | None:
    if record_type == "COSTS":
        return "costs"  # an hourly usage bucket: nothing happened but consumption
    for path in _ACTION_PATHS.get(record_type, _ANY_ACTION):
        if found := text(raw, *path):
            return found
    return None


def status_outcome(status: str | None) -> Outcome | None:
    """A status word as an outcome; None when there is none, `unknown` when it is new."""
    if status is None:
        return None
    word = status.lower()
    if word in _SUCCESS:
        return "success"
    return "failure" if word in _FAILURE else "unknown"


def _app_outcome(raw: JsonDict) -> Outcome | None:
    errors = [dig(item, "response", "result", "isError") for item in raw.get("output") or ()]
    flags = [flag for flag in errors if isinstance(flag, bool)] if isinstance(errors, list) else []
    if not flags:
        return None
    return "failure" if any(flags) else "success"


def _outcome(
    record_type: str, action: str | None, raw: JsonDict, details: JsonDict
) -> Outcome | None:
    if record_type == "AUTH_LOG":
        # Elastic's rule: a sign-in action containing "fail" failed.
        return None if action is None else ("failure" if "fail" in action.lower() else "success")
    if record_type == "APP_LOG" and isinstance(raw.get("output"), list):
        return _app_outcome(raw)
    if found := status_outcome(text(raw, "action_result") or text(details, "status")):
        return found
    if (action and action.upper().endswith(("_FAILED", "_ERROR"))) or text(details, "error_code"):
        return "failure"
    if action and action.upper().endswith(("_COMPLETED", "_SUCCEEDED")):
        return "success"
    return None


@dataclass(frozen=True, slots=True)
class RecordView:
    """A compliance record as the renderers read it."""

    event: AuditEvent
    raw: JsonDict
    info: TypeInfo
    timestamp: str
    time_ms: int
    time_source: TimeSource
    principal_id: str | None
    principal_type: str | None
    workspace_id: str | None
    client_id: str | None
    actor: Actor
    network: Network
    action: str | None
    details: JsonDict  # event_details / action_data / payload / message: the type's content
    outcome: Outcome | None
    model: str | None

    @property
    def record_type(self) -> str:
        return self.event.type

    @property
    def error(self) -> tuple[str | None, str | None]:
        """`(code, message)` of a failed call or run."""
        details = self.details
        return text(details, "error_code"), text(details, "error_message") or text(
            details, "failure_message"
        )

    def content(self) -> JsonDict:
        """Every key of the record beyond the envelope, as sent (the type-specific part)."""
        return {k: v for k, v in self.raw.items() if k not in ENVELOPE}


def _details(record_type: str, raw: JsonDict) -> JsonDict:
    for key in ("event_details", "action_data", "payload"):
        if isinstance(raw.get(key), dict):
            return dict(raw[key])
    if record_type == "CONVERSATION_MESSAGE":
        return as_dict(raw.get("message"))
    return {}


def _model(raw: JsonDict, details: JsonDict) -> str | None:
    return (
        text(details, "model")
        or text(details, "author", "model")
        or text(details, "agent_fields", "model_spec", "name")
    )


def view_of(event: AuditEvent) -> RecordView:
    """Read a compliance record once; never raises, whatever the record holds."""
    raw = event.raw
    if not isinstance(raw, dict):  # a record line that is valid JSON but not an object
        raw = {"value": raw}
    record_type = event.type
    details = _details(record_type, raw)
    action = _action(record_type, raw)
    timestamp, time_ms, time_source = event_time(event, raw)
    principal = raw.get("principal")
    return RecordView(
        event=event,
        raw=raw,
        info=type_info(record_type),
        timestamp=timestamp,
        time_ms=time_ms,
        time_source=time_source,
        principal_id=text(principal, "id"),
        principal_type=text(principal, "type"),
        workspace_id=text(raw, "workspace_id"),
        client_id=text(raw, "client_id"),
        actor=read_actor(raw.get("actor")),
        network=read_network(raw),
        action=action,
        details=details,
        outcome=_outcome(record_type, action, raw, details),
        model=_model(raw, details),
    )
