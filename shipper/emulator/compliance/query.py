"""The listing's path and query, validated as the API (or a careful client) would.

Unknowns of API.md are switches on `QueryRules`: whether an `after` without a UTC offset is read
as UTC or refused, what a missing `limit` means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from shipper.emulator.compliance.store import Scope
from shipper.emulator.faults import Canned, api_error

API_PREFIX = "/v1/compliance"
MAX_LIMIT = 100
_PATH = re.compile(r"^/v1/compliance/(workspaces|organizations)/([^/]+)/logs(?:/([^/]+))?$")
_WORKSPACE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_ORG_ID = re.compile(r"^org-[A-Za-z0-9_-]+$")
_FILE_ID = re.compile(r"^eclf_[0-9a-f]{32}$")
# RFC 3339 with up to 9 fractional digits (Go's RFC3339Nano); the offset may be missing.
_TIME = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?$", re.I
)


class QueryError(Exception):
    def __init__(self, canned: Canned) -> None:
        super().__init__(canned.status)
        self.canned = canned


def bad_request(message: str, param: str | None = None, status: int = 400) -> QueryError:
    return QueryError(Canned(status, api_error(message, param=param)))


def not_found(message: str) -> QueryError:
    return QueryError(Canned(404, api_error(message, type="not_found_error")))


@dataclass(frozen=True)
class Route:
    scope: Scope
    file_id: str | None  # None: the listing


def parse_path(path: str) -> Route | None:
    """The scope and file id of a compliance path, or None when the path is not one; raises
    QueryError for a malformed scope id or file id."""
    match = _PATH.match(path)
    if match is None:
        return None
    kind, scope_id, file_id = match.groups()
    pattern = _WORKSPACE_ID if kind == "workspaces" else _ORG_ID
    if not pattern.match(scope_id):
        shape = "a UUID" if kind == "workspaces" else "'org-' followed by letters and digits"
        raise bad_request(f"Invalid {kind[:-1]} id {scope_id!r}: expected {shape}.")
    if file_id is not None and not _FILE_ID.match(file_id):
        raise not_found(f"No log file {file_id!r}.")
    return Route((kind, scope_id), file_id)


@dataclass(frozen=True)
class ListQuery:
    event_type: str
    after: int  # microseconds since the epoch
    limit: int


@dataclass
class QueryRules:
    known_event_types: frozenset[str]
    naive_after_is_utc: bool = False  # else an `after` without an offset is refused
    default_limit: int = MAX_LIMIT  # when `limit` is missing (UNKNOWN in API.md)


def parse_list_query(query: str, rules: QueryRules) -> ListQuery:
    params = parse_qs(query, keep_blank_values=True)
    types = params.get("event_type", [])
    if not types or not types[0]:
        raise bad_request("Missing required parameter 'event_type'.", "event_type")
    if len(types) > 1 or "," in types[0]:
        raise bad_request("Exactly one 'event_type' per request.", "event_type")
    if types[0] not in rules.known_event_types:
        known = ", ".join(sorted(rules.known_event_types))
        raise bad_request(f"Invalid event_type {types[0]!r}; one of: {known}.", "event_type")
    afters = params.get("after", [])
    if len(afters) != 1:
        raise bad_request("Exactly one required parameter 'after' (ISO 8601 time).", "after")
    after = parse_time(afters[0], naive_is_utc=rules.naive_after_is_utc)
    limits = params.get("limit", [str(rules.default_limit)])
    try:
        limit = int(limits[-1])
    except ValueError:
        raise bad_request(f"Invalid limit {limits[-1]!r}: expected an integer.", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be between 1 and {MAX_LIMIT}.", "limit", status=422)
    return ListQuery(types[0], after, limit)


def parse_time(text: str, *, naive_is_utc: bool) -> int:
    """Microseconds since the epoch of an ISO 8601 time; digits past microseconds are cut."""
    match = _TIME.match(text)
    if match is None:
        raise bad_request(f"Invalid 'after' {text!r}: expected an ISO 8601 time.", "after")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None and not naive_is_utc:
        raise bad_request(f"Invalid 'after' {text!r}: the time zone is missing.", "after")
    try:
        when = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC
        )
    except ValueError as exc:
        raise bad_request(f"Invalid 'after' {text!r}: {exc}.", "after") from None
    if offset and offset.upper() != "Z":
        sign = 1 if offset[0] == "+" else -1
        when -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    micros = int((fraction or "0").ljust(6, "0")[:6])
    return int(when.timestamp()) * 1_000_000 + micros
