"""A strict ECS 9.4 document checker, written from ecs_flat.yml, independent of the renderer.

Every leaf is either an ECS field with a value of the field's type (arrays only where ECS says
`normalize: array`), or lives under a vendor namespace: `openai.*` (audit events) or
`openai_chatgpt_enterprise.*` (compliance records, where Elastic's integration keeps them). `event.kind/category/type/outcome` take only
allowed values, and every `event.type` must be expected by one of the document's categories.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import math
from typing import Any

from tests.render.schemas import ECS_DIR, require

VENDOR_ROOTS = frozenset({"openai", "openai_chatgpt_enterprise"})
_TEXT_TYPES = frozenset({"keyword", "constant_keyword", "wildcard", "match_only_text", "text"})
_INT_TYPES = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
_FLOAT_TYPES = frozenset({"float", "double", "half_float", "scaled_float"})
_OPAQUE_TYPES = frozenset({"object", "flattened", "nested"})


@functools.cache
def ecs_fields() -> dict[str, dict[str, Any]]:
    fields: dict[str, dict[str, Any]] = json.loads(require(ECS_DIR / "ecs_flat.json").read_bytes())
    return fields


@functools.cache
def categorization() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(require(ECS_DIR / "event-categorization.json").read_text())
    return data


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_geo_point(value: Any) -> bool:
    if not isinstance(value, dict) or set(value) != {"lat", "lon"}:
        return False
    lat, lon = value["lat"], value["lon"]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lat, lon))
    return numbers and math.isfinite(lat) and -90 <= lat <= 90 and -180 <= lon <= 180


def _type_ok(es_type: str, value: Any) -> bool:
    if es_type in _TEXT_TYPES:
        return isinstance(value, str)
    if es_type in _INT_TYPES:
        return isinstance(value, int) and not isinstance(value, bool)
    if es_type in _FLOAT_TYPES:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if es_type == "boolean":
        return isinstance(value, bool)
    checks = {"date": _is_date, "ip": _is_ip, "geo_point": _is_geo_point}
    return es_type in checks and checks[es_type](value)


def _check_leaf(name: str, value: Any, errors: list[str]) -> None:
    spec = ecs_fields().get(name)
    if spec is None:
        errors.append(f"{name}: not an ECS field and not under a vendor namespace")
        return
    es_type = spec["type"]
    if es_type in _OPAQUE_TYPES:
        return
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and "array" not in spec.get("normalize", []):
        errors.append(f"{name}: ECS does not make this field an array")
    for item in values:
        if not _type_ok(es_type, item):
            errors.append(f"{name}: {item!r} is not a valid {es_type}")


def _walk(prefix: str, node: dict[str, Any], errors: list[str]) -> None:
    for key, value in node.items():
        name = f"{prefix}{key}"
        if "." in key:
            errors.append(f"{name}: dotted key (emit nested objects)")
        if name in VENDOR_ROOTS:
            if not isinstance(value, dict):
                errors.append(f"{name}: the vendor namespace must be an object")
            continue
        spec = ecs_fields().get(name)
        is_point = spec is not None and spec["type"] == "geo_point"
        if isinstance(value, dict) and not is_point:
            if not value:
                errors.append(f"{name}: empty object")
            _walk(f"{name}.", value, errors)
        else:
            _check_leaf(name, value, errors)


def _check_event(doc: dict[str, Any], errors: list[str]) -> None:
    cat = categorization()
    event = doc.get("event", {})
    kind, outcome = event.get("kind"), event.get("outcome")
    if kind not in cat["event.kind"]["allowed_values"]:
        errors.append(f"event.kind {kind!r} not allowed")
    if outcome is not None and outcome not in cat["event.outcome"]["allowed_values"]:
        errors.append(f"event.outcome {outcome!r} not allowed")
    categories, types = event.get("category", []), event.get("type", [])
    for c in categories:
        if c not in cat["event.category"]["allowed_values"]:
            errors.append(f"event.category {c!r} not allowed")
    expected = {t for c in categories for t in cat["category_to_allowed_types"].get(c, [])}
    for t in types:
        if t not in cat["event.type"]["allowed_values"]:
            errors.append(f"event.type {t!r} not allowed")
        elif t not in expected:
            errors.append(f"event.type {t!r} not expected for categories {categories}")


def validate(doc: dict[str, Any]) -> list[str]:
    """Every problem with an ECS document (empty list: valid)."""
    errors: list[str] = []
    _walk("", doc, errors)
    for required in ("@timestamp", "ecs"):
        if required not in doc:
            errors.append(f"{required}: required by ECS")
    if doc.get("ecs", {}).get("version") != "9.4.0":
        errors.append("ecs.version must be 9.4.0")
    _check_event(doc, errors)
    return errors


def leaf_paths(doc: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted names of the document's leaves (geo points count as leaves)."""
    out: set[str] = set()
    for key, value in doc.items():
        name = f"{prefix}{key}"
        spec = ecs_fields().get(name)
        if isinstance(value, dict) and value and not (spec and spec["type"] == "geo_point"):
            out |= leaf_paths(value, f"{name}.")
        else:
            out.add(name)
    return out
