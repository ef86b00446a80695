"""The SIEM mapping table: how each audit-log event type reads in ECS, OCSF, CEF and Splunk CIM.

The table is data (`shipper/data/event_mapping.json`), loaded and checked once, on first use.
`mapping_for(type)` answers for any type string: a row of the table, or the default rule for a
type the table does not know yet (OpenAI adds types without notice).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

Outcome = Literal["success", "failure"]

TABLE_RESOURCE = "event_mapping.json"
# OCSF classes the renderer knows how to fill (required attributes differ per class).
OCSF_CLASSES = frozenset({3001, 3002, 3004, 3005, 3006})
_ROW_KEYS = frozenset({"action", "outcome", "target", "principal", "ecs", "ocsf", "severity"})
_TARGET_KEYS = frozenset({"kind", "id", "name", "email"})
_PRINCIPAL_KEYS = frozenset({"id", "type", "resource_id", "resource_type"})


class MappingTableError(ValueError):
    """The mapping table is malformed; the message names the row and the problem."""


@dataclass(frozen=True, slots=True)
class PayloadPath:
    """A path into the type-keyed payload: dot-separated keys, `[]` iterates a list."""

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> PayloadPath:
        parts: list[str] = []
        for segment in text.split("."):
            key, brackets, rest = segment.partition("[]")
            if not key or rest:
                raise MappingTableError(f"payload path {text!r}: bad segment {segment!r}")
            parts.append(key)
            if brackets:
                parts.append("[]")
        return cls(text=text, parts=tuple(parts))

    def strings(self, payload: Any) -> tuple[str, ...]:
        """Every non-empty string the path reaches; nothing (never an error) on other shapes."""
        nodes = [payload]
        for part in self.parts:
            if part == "[]":
                nodes = [item for node in nodes if isinstance(node, list) for item in node]
            else:
                nodes = [node[part] for node in nodes if isinstance(node, dict) and part in node]
        return tuple(node for node in nodes if isinstance(node, str) and node)

    def first(self, payload: Any) -> str | None:
        found = self.strings(payload)
        return found[0] if found else None


@dataclass(frozen=True, slots=True)
class Target:
    """What the event acted on: its kind and where its id (and name, email) sit in the payload."""

    kind: str
    id: PayloadPath | None
    name: PayloadPath | None = None
    email: PayloadPath | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who received or lost a privilege (role assignments), and on which resource."""

    id: PayloadPath
    type: PayloadPath
    resource_id: PayloadPath | None = None
    resource_type: PayloadPath | None = None


@dataclass(frozen=True, slots=True)
class Mapping:
    """One row of the table, resolved for one event type."""

    event_type: str
    known: bool
    action: str
    outcome: Outcome
    target: Target | None
    principal: Principal | None
    ecs_category: tuple[str, ...]
    ecs_type: tuple[str, ...]
    ocsf_class_uid: int
    ocsf_activity_id: int
    ocsf_activity_name: str
    severity: str
    severity_id: int

    @property
    def ocsf_type_uid(self) -> int:
        return self.ocsf_class_uid * 100 + self.ocsf_activity_id

    @property
    def title(self) -> str:
        """A human name for the type, e.g. `api key created` (CEF's Name header field)."""
        return self.event_type.replace(".", " ").replace("_", " ")


@dataclass(frozen=True, slots=True)
class _Verb:
    ecs_type: str
    activity_id: int
    activity_name: str


@dataclass(frozen=True, slots=True)
class _Table:
    rows: dict[str, Mapping]
    verbs: dict[str, _Verb]
    default: dict[str, Any]
    severities: dict[str, int]


def _need(row: str, cond: bool, problem: str) -> None:
    if not cond:
        raise MappingTableError(f"mapping table row {row!r}: {problem}")


def _str_list(row: str, value: Any, what: str) -> tuple[str, ...]:
    ok = isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)
    _need(row, bool(ok), f"{what} must be a non-empty list of strings")
    return tuple(value)


def _path(row: str, value: Any, what: str) -> PayloadPath | None:
    if value is None:
        return None
    _need(row, isinstance(value, str), f"{what} must be a path string or null")
    try:
        return PayloadPath.parse(value)
    except MappingTableError as exc:
        raise MappingTableError(f"mapping table row {row!r}: {exc}") from None


def _target(row: str, raw: Any) -> Target | None:
    if raw is None:
        return None
    _need(row, isinstance(raw, dict) and set(raw) <= _TARGET_KEYS, f"target keys: {_TARGET_KEYS}")
    _need(row, isinstance(raw.get("kind"), str) and bool(raw["kind"]), "target.kind missing")
    return Target(
        kind=raw["kind"],
        id=_path(row, raw.get("id"), "target.id"),
        name=_path(row, raw.get("name"), "target.name"),
        email=_path(row, raw.get("email"), "target.email"),
    )


def _principal(row: str, raw: Any) -> Principal | None:
    if raw is None:
        return None
    ok = isinstance(raw, dict) and set(raw) <= _PRINCIPAL_KEYS and {"id", "type"} <= set(raw)
    _need(row, ok, f"principal needs id and type, keys among {sorted(_PRINCIPAL_KEYS)}")
    principal_id = _path(row, raw["id"], "principal.id")
    principal_type = _path(row, raw["type"], "principal.type")
    assert principal_id is not None and principal_type is not None
    return Principal(
        id=principal_id,
        type=principal_type,
        resource_id=_path(row, raw.get("resource_id"), "principal.resource_id"),
        resource_type=_path(row, raw.get("resource_type"), "principal.resource_type"),
    )


def _ocsf(row: str, raw: Any) -> tuple[int, int, str]:
    _need(row, isinstance(raw, dict), "ocsf must be an object")
    class_uid, activity_id, name = (
        raw.get("class_uid"),
        raw.get("activity_id"),
        raw.get("activity_name"),
    )
    _need(row, class_uid in OCSF_CLASSES, f"ocsf.class_uid must be one of {sorted(OCSF_CLASSES)}")
    _need(row, isinstance(activity_id, int) and not isinstance(activity_id, bool), "activity_id")
    _need(row, isinstance(name, str) and bool(name), "ocsf.activity_name missing")
    return class_uid, activity_id, name


def _row(event_type: str, raw: Any, severities: dict[str, int]) -> Mapping:
    _need(event_type, isinstance(raw, dict), "must be an object")
    _need(event_type, set(raw) <= _ROW_KEYS, f"unknown keys {sorted(set(raw) - _ROW_KEYS)}")
    _need(event_type, isinstance(raw.get("action"), str) and bool(raw["action"]), "action")
    _need(event_type, raw.get("outcome") in ("success", "failure"), "outcome success|failure")
    _need(event_type, raw.get("severity") in severities, f"severity one of {list(severities)}")
    ecs = raw.get("ecs")
    _need(event_type, isinstance(ecs, dict), "ecs must be an object")
    class_uid, activity_id, activity_name = _ocsf(event_type, raw.get("ocsf"))
    return Mapping(
        event_type=event_type,
        known=True,
        action=raw["action"],
        outcome=raw["outcome"],
        target=_target(event_type, raw.get("target")),
        principal=_principal(event_type, raw.get("principal")),
        ecs_category=_str_list(event_type, ecs.get("category"), "ecs.category"),
        ecs_type=_str_list(event_type, ecs.get("type"), "ecs.type"),
        ocsf_class_uid=class_uid,
        ocsf_activity_id=activity_id,
        ocsf_activity_name=activity_name,
        severity=raw["severity"],
        severity_id=severities[raw["severity"]],
    )


def _verbs(raw: Any) -> dict[str, _Verb]:
    _need("verbs", isinstance(raw, dict), "must be an object")
    return {
        verb: _Verb(v["ecs_type"], v["ocsf_activity_id"], v["ocsf_activity_name"])
        for verb, v in raw.items()
    }


def _check_default(raw: Any, severities: dict[str, int]) -> dict[str, Any]:
    _need("default", isinstance(raw, dict), "must be an object")
    _need("default", raw.get("outcome") == "by_suffix", "outcome must be by_suffix")
    _need("default", raw.get("severity") in severities, "severity")
    _str_list("default", raw["ecs"]["category"], "ecs.category")
    _str_list("default", raw["ecs"]["type"], "ecs.type")
    _ocsf("default", raw.get("ocsf"))
    _path("default", raw.get("target_id"), "target_id")
    return dict(raw)


def parse_table(doc: Any) -> _Table:
    """Check a table document and resolve every row; `MappingTableError` names what is wrong."""
    _need("(top)", isinstance(doc, dict), "the table must be a JSON object")
    severities = doc.get("severities")
    _need("severities", isinstance(severities, dict) and bool(severities), "must be an object")
    rows = {**doc.get("types", {}), **doc.get("extras", {})}
    return _Table(
        rows={t: _row(t, r, severities) for t, r in rows.items()},
        verbs=_verbs(doc.get("verbs")),
        default=_check_default(doc.get("default"), severities),
        severities=dict(severities),
    )


@functools.cache
def table() -> _Table:
    """The shipped table, read and checked once per process."""
    return parse_table(table_document())


def table_document() -> dict[str, Any]:
    """The table document as shipped, freshly read (for docs and tests)."""
    text = resources.files("shipper").joinpath("data", TABLE_RESOURCE).read_text("utf-8")
    doc: dict[str, Any] = json.loads(text)
    return doc


def _default_mapping(event_type: str, tbl: _Table) -> Mapping:
    rule = tbl.default
    prefix, _, action = event_type.rpartition(".")
    action = action or event_type
    verb = tbl.verbs.get(action)
    ocsf = rule["ocsf"]
    return Mapping(
        event_type=event_type,
        known=False,
        action=action,
        outcome="failure" if event_type.endswith(".failed") else "success",
        target=Target(
            kind=(prefix or event_type).replace(".", "_"),
            id=_path("default", rule.get("target_id"), "target_id"),
        ),
        principal=None,
        ecs_category=tuple(rule["ecs"]["category"]),
        ecs_type=(verb.ecs_type,) if verb else tuple(rule["ecs"]["type"]),
        ocsf_class_uid=ocsf["class_uid"],
        ocsf_activity_id=verb.activity_id if verb else ocsf["activity_id"],
        ocsf_activity_name=verb.activity_name if verb else ocsf["activity_name"],
        severity=rule["severity"],
        severity_id=tbl.severities[rule["severity"]],
    )


@functools.lru_cache(maxsize=4096)
def _unknown(event_type: str) -> Mapping:
    return _default_mapping(event_type, table())


def mapping_for(event_type: str) -> Mapping:
    """The mapping of one event type; the default rule for types the table does not list."""
    row = table().rows.get(event_type)
    return row if row is not None else _unknown(event_type)
