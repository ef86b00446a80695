"""Parse and validate the list endpoint's query string into a `Query`, refusing as the API would."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl

from shipper.emulator.faults import Canned, bad_request
from shipper.source.audit_log.event_types import is_tenant_scoped

Order = Literal["desc", "asc"]


class ApiError(Exception):
    """A request the API refuses; carries the response to send."""

    def __init__(self, canned: Canned) -> None:
        super().__init__(canned.status)
        self.canned = canned


# Array filters in facet order: each event stores one tuple of values per filter.
_FILTERS = ("project_ids[]", "event_types[]", "actor_ids[]", "actor_emails[]", "resource_ids[]")
_BOUNDS = {f"effective_at[{op}]": op for op in ("gt", "gte", "lt", "lte")}
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class Query:
    bounds: dict[str, int] = field(default_factory=dict)
    filters: dict[int, frozenset[str]] = field(default_factory=dict)
    tenant_only: bool = False
    limit: int = 20
    after: str | None = None
    before: str | None = None
    ignored: list[str] = field(default_factory=list)


def _parse_int(name: str, value: str) -> int:
    if not _INTEGER.fullmatch(value):  # int() would also take " 7", "1_000" and non-ASCII digits
        message = f"Invalid '{name}': expected an integer, but got '{value}' instead."
        raise ApiError(bad_request(message, name, "invalid_type"))
    return int(value)


def _parse_limit(value: str) -> int:
    limit = _parse_int("limit", value)
    if limit < 1:
        message = (
            "Invalid 'limit': integer below minimum value. "
            f"Expected a value >= 1, but got {limit} instead."
        )
        raise ApiError(bad_request(message, "limit", "integer_below_min_value"))
    if limit > 100:
        message = (
            "Invalid 'limit': integer above maximum value. "
            f"Expected a value <= 100, but got {limit} instead."
        )
        raise ApiError(bad_request(message, "limit", "integer_above_max_value"))
    return limit


def _parse_bool(name: str, value: str) -> bool:
    if value.lower() not in ("true", "false"):
        message = f"Invalid '{name}': expected a boolean, but got '{value}' instead."
        raise ApiError(bad_request(message, name, "invalid_type"))
    return value.lower() == "true"


def parse_query(query: str) -> Query:
    """Parse and validate the list endpoint's query string; unknown parameters are ignored."""
    q = Query()
    arrays: dict[int, set[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name in _FILTERS:
            arrays.setdefault(_FILTERS.index(name), set()).add(value)
        elif name in _BOUNDS:
            q.bounds[_BOUNDS[name]] = _parse_int(name, value)
        elif name == "limit":
            q.limit = _parse_limit(value)
        elif name == "tenant_only":
            q.tenant_only = _parse_bool(name, value)
        elif name in ("after", "before"):
            setattr(q, name, value)
        else:
            q.ignored.append(name)
    q.filters = {i: frozenset(values) for i, values in arrays.items()}
    _check_types(q)
    if q.after is not None and q.before is not None:
        raise ApiError(bad_request("Only one of 'after' and 'before' may be given.", "before"))
    return q


def _check_types(q: Query) -> None:
    """Tenant-scoped and other types are listed by separate passes; mixing them is refused."""
    types = q.filters.get(_FILTERS.index("event_types[]"), frozenset())
    wrong = sorted(t for t in types if is_tenant_scoped(t) != q.tenant_only)
    if wrong and q.tenant_only:
        message = (
            "When 'tenant_only' is true, all event_types must be tenant-scoped; "
            f"not: {', '.join(wrong)}."
        )
        raise ApiError(bad_request(message, "event_types"))
    if wrong:
        message = f"Tenant-scoped event types require 'tenant_only=true': {', '.join(wrong)}."
        raise ApiError(bad_request(message, "event_types"))
