"""Events sorted by `(effective_at, id)` in parallel arrays, split by tenant scope.

Pages are located by bisect and built by joining each event's JSON bytes, serialized once on
insertion; the event dicts themselves are not kept, so a caller that drops its list frees them.
"""

from __future__ import annotations

import heapq
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import orjson

from shipper.emulator.events import Event, gc_paused
from shipper.emulator.faults import bad_request
from shipper.emulator.query import _FILTERS, ApiError, Order, Query
from shipper.model.event import compact_json
from shipper.source.audit_log.event_types import is_tenant_scoped

Facets = tuple[tuple[str, ...], ...]
_Row = tuple[int, str, bytes, Facets | None]  # effective_at, id, JSON bytes, filter values
# Batches up to this size are inserted in place; larger ones rebuild the arrays with one sort.
_INSORT_MAX = 64


def _str_field(obj: object, name: str) -> tuple[str, ...]:
    value = obj.get(name) if isinstance(obj, dict) else None
    return (value,) if isinstance(value, str) else ()


def _facets(event: Event, shared: dict[Any, Any]) -> Facets:
    """The values each array filter matches against, in `query._FILTERS` order.

    Projects, types and actors repeat across events: `shared` keeps one tuple per distinct value
    so a million events do not hold a million copies (setdefault is atomic: no lock needed).
    """
    ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    actor = event.get("actor")
    kind = actor.get("type") if isinstance(actor, dict) else None
    detail = actor.get(kind) if isinstance(actor, dict) and isinstance(kind, str) else None
    if isinstance(detail, dict):  # session.user, api_key{id,user,service_account}, unknown{id}
        for who in (detail, detail.get("user"), detail.get("service_account")):
            ids += _str_field(who, "id")
            emails += _str_field(who, "email")
    project = _str_field(event.get("project"), "id")
    common = (shared.setdefault(t, t) for t in (project, (event["type"],), ids, emails))
    return (*common, _str_field(event.get(event["type"]), "id"))


def _row(event: Event) -> _Row:
    """A new event's row; its facets are computed when a filtered request first needs them."""
    if not isinstance(event, dict):
        raise ValueError(f"an event is a JSON object, not {type(event).__name__}")
    event_id, when, kind = event.get("id"), event.get("effective_at"), event.get("type")
    if not isinstance(event_id, str) or not isinstance(kind, str):
        raise ValueError(f"an event needs a string id and type: {event_id!r}")
    if not isinstance(when, int) or isinstance(when, bool):
        raise ValueError(f"event {event_id}: effective_at must be an integer, got {when!r}")
    return when, event_id, compact_json(event), None


class _Partition:
    """Events of one scope (tenant or not) sorted by (effective_at, id), in parallel arrays."""

    def __init__(self, shared: dict[Any, Any]) -> None:
        self.times: list[int] = []
        self.ids: list[str] = []
        self.blobs: list[bytes] = []
        self.facets: list[Facets | None] = []  # None until a filtered request needs them
        self._shared = shared

    def position(self, when: int, event_id: str, *, after: bool) -> int:
        """Where key (when, event_id) sits: bisect the second, then the ids within it."""
        lo = bisect_left(self.times, when)
        hi = bisect_right(self.times, when, lo)
        return (bisect_right if after else bisect_left)(self.ids, event_id, lo, hi)

    def insert(self, rows: list[_Row]) -> None:
        if len(rows) > _INSORT_MAX:
            self._rebuild(rows)
            return
        for when, event_id, blob, facets in rows:
            i = self.position(when, event_id, after=False)
            self.times.insert(i, when)
            self.ids.insert(i, event_id)
            self.blobs.insert(i, blob)
            self.facets.insert(i, facets)

    def _rebuild(self, rows: list[_Row]) -> None:
        merged = [*zip(self.times, self.ids, self.blobs, self.facets, strict=True), *rows]
        merged.sort(key=itemgetter(0, 1))
        self.times = [r[0] for r in merged]
        self.ids = [r[1] for r in merged]
        self.blobs = [r[2] for r in merged]
        self.facets = [r[3] for r in merged]

    def window(self, bounds: dict[str, int]) -> tuple[int, int]:
        """Index range [lo, hi) of the events inside the `effective_at` bounds."""
        times = self.times
        lo, hi = 0, len(times)
        if "gte" in bounds:
            lo = max(lo, bisect_left(times, bounds["gte"]))
        if "gt" in bounds:
            lo = max(lo, bisect_right(times, bounds["gt"]))
        if "lt" in bounds:
            hi = min(hi, bisect_left(times, bounds["lt"]))
        if "lte" in bounds:
            hi = min(hi, bisect_right(times, bounds["lte"]))
        return lo, hi

    def select(self, lo: int, hi: int, from_high: bool, want: int, q: Query) -> list[int]:
        """Up to `want` matching indices in [lo, hi), scanning from the high or the low end."""
        span = range(hi - 1, lo - 1, -1) if from_high else range(lo, hi)
        if not q.filters:
            return list(span[:want])
        wanted = list(q.filters.items())
        found: list[int] = []
        for i in span:
            facets = self.facets[i]
            if facets is None:  # most listings never filter: pay only when one does
                facets = self.facets[i] = _facets(orjson.loads(self.blobs[i]), self._shared)
            if all(not values.isdisjoint(facets[f]) for f, values in wanted):
                found.append(i)
                if len(found) == want:
                    break
        return found


@dataclass(frozen=True)
class _Page:
    blobs: list[bytes]
    first_id: str | None
    last_id: str | None
    has_more: bool

    def body(self) -> bytes:
        return b"".join(
            (b'{"object":"list","data":[', b",".join(self.blobs), b'],"first_id":',
             orjson.dumps(self.first_id), b',"last_id":', orjson.dumps(self.last_id),
             b',"has_more":', b"true" if self.has_more else b"false", b"}")
        )  # fmt: skip


class Store:
    """Every event held, as JSON bytes split by tenant scope, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        shared: dict[Any, Any] = {}  # facet values common to both scopes
        self._org = _Partition(shared)
        self._tenant = _Partition(shared)
        self._when: dict[str, int] = {}  # id -> effective_at, to place any cursor
        self._poison: set[str] = set()  # ids of entries that are not readable events

    def add(self, events: Iterable[Event]) -> None:
        with gc_paused():
            split: dict[bool, list[_Row]] = {True: [], False: []}
            for event in events:  # serialize outside the lock
                row = _row(event)
                split[is_tenant_scoped(event["type"])].append(row)
            self._insert(tenant=split[True], org=split[False])

    def add_poison(self, when: int, place_id: str, blob: bytes, *, tenant: bool) -> None:
        """An entry served byte for byte at `(when, place_id)`; no filter matches it, and it is
        not part of the ground truth (it cannot be delivered as an event)."""
        row: _Row = (when, place_id, blob, ((),) * len(_FILTERS))
        self._insert(tenant=[row] if tenant else [], org=[] if tenant else [row])
        with self._lock:
            self._poison.add(place_id)

    def _insert(self, *, tenant: list[_Row], org: list[_Row]) -> None:
        ids = [row[1] for row in tenant + org]
        with self._lock:
            if len(set(ids)) != len(ids) or not self._when.keys().isdisjoint(ids):
                raise ValueError("event ids must be unique; a batch repeats one or one is held")
            self._when.update((row[1], row[0]) for row in tenant + org)
            self._tenant.insert(tenant)
            self._org.insert(org)

    def blobs(self) -> list[bytes]:
        """Every event's JSON bytes, ascending by (effective_at, id) across both scopes."""
        with self._lock:  # copies: in-place inserts may run while the merge iterates
            parts = [(p.times[:], p.ids[:], p.blobs[:]) for p in (self._org, self._tenant)]
            poison = set(self._poison)
        merged = heapq.merge(*(zip(*part, strict=True) for part in parts))
        return [blob for _, event_id, blob in merged if event_id not in poison]

    def page(self, q: Query, order: Order) -> _Page:
        part = self._tenant if q.tenant_only else self._org
        cursor = q.after if q.after is not None else q.before
        with self._lock:
            lo, hi = part.window(q.bounds)
            if cursor is not None:
                when = self._when.get(cursor)
                if when is None:
                    param = "after" if q.after is not None else "before"
                    raise ApiError(bad_request(f"No audit log found with id '{cursor}'.", param))
                # The listing continues toward older events for desc+after and asc+before.
                if (order == "desc") == (q.after is not None):
                    hi = min(hi, part.position(when, cursor, after=False))
                else:
                    lo = max(lo, part.position(when, cursor, after=True))
            # Scan outward from the listing's start, or from the cursor for `before`.
            from_high = (order == "desc") == (q.before is None)
            found = part.select(lo, hi, from_high, q.limit + 1, q)
            has_more = len(found) > q.limit
            found = found[: q.limit]
            if q.before is not None:  # scanned away from the cursor: flip into listing order
                found.reverse()
            blobs = [part.blobs[i] for i in found]
            if not found:
                return _Page(blobs, None, None, has_more)
            first_id, last_id = part.ids[found[0]], part.ids[found[-1]]
        return _Page(blobs, first_id, last_id, has_more)
