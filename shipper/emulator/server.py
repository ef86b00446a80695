"""The emulator: an in-memory audit log served over real HTTP on loopback, with injectable faults.

Three layers, top to bottom: `Emulator` (the Python control API and the answer to one list
request), `_Handler`/`_Server` (stdlib HTTP/1.1 with keep-alive, faults applied to delivery), and
`_Store` (events sorted by `(effective_at, id)` in parallel arrays; pages are located by bisect
and built by joining each event's JSON bytes, serialized once on insertion; the event dicts
themselves are not kept, so a caller that drops its list frees them).
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import logging
import random
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from operator import itemgetter
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qsl

import orjson

from shipper.emulator.events import Event, gc_paused, generate_events, is_tenant_scoped
from shipper.emulator.faults import (
    DELIVERY_FAULTS,
    Canned,
    Fault,
    FaultSchedule,
    api_error,
    bad_request,
    canned_response,
    invalid_key,
    logging_disabled,
    missing_key,
    missing_scope,
)
from shipper.model import compact_json

LIST_PATH = "/v1/organization/audit_logs"
Order = Literal["desc", "asc"]
_log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the API refuses; carries the response to send."""

    def __init__(self, canned: Canned) -> None:
        super().__init__(canned.status)
        self.canned = canned


# --- query parsing -------------------------------------------------------------------------------

# Array filters in facet order: each event stores one tuple of values per filter.
_FILTERS = ("project_ids[]", "event_types[]", "actor_ids[]", "actor_emails[]", "resource_ids[]")
_BOUNDS = {f"effective_at[{op}]": op for op in ("gt", "gte", "lt", "lte")}
_INTEGER = re.compile(r"-?[0-9]+")


@dataclass
class _Query:
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


def _parse_query(query: str) -> _Query:
    """Parse and validate the list endpoint's query string; unknown parameters are ignored."""
    q = _Query()
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


def _check_types(q: _Query) -> None:
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


# --- the store -----------------------------------------------------------------------------------

Facets = tuple[tuple[str, ...], ...]
_Row = tuple[int, str, bytes, Facets | None]  # effective_at, id, JSON bytes, filter values
# Batches up to this size are inserted in place; larger ones rebuild the arrays with one sort.
_INSORT_MAX = 64


def _str_field(obj: object, name: str) -> tuple[str, ...]:
    value = obj.get(name) if isinstance(obj, dict) else None
    return (value,) if isinstance(value, str) else ()


def _facets(event: Event, shared: dict[Any, Any]) -> Facets:
    """The values each array filter matches against, in `_FILTERS` order.

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

    def select(self, lo: int, hi: int, from_high: bool, want: int, q: _Query) -> list[int]:
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


class _Store:
    """Every event held, as JSON bytes split by tenant scope, guarded by one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        shared: dict[Any, Any] = {}  # facet values common to both scopes
        self._org = _Partition(shared)
        self._tenant = _Partition(shared)
        self._when: dict[str, int] = {}  # id -> effective_at, to place any cursor

    def add(self, events: Iterable[Event]) -> None:
        with gc_paused():
            split: dict[bool, list[_Row]] = {True: [], False: []}
            for event in events:  # serialize outside the lock
                row = _row(event)
                split[is_tenant_scoped(event["type"])].append(row)
            self._insert(tenant=split[True], org=split[False])

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
        return [blob for *_, blob in heapq.merge(*(zip(*part, strict=True) for part in parts))]

    def page(self, q: _Query, order: Order) -> _Page:
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


# --- stats ---------------------------------------------------------------------------------------


@dataclass
class Stats:
    """Counters since the emulator was created; `Emulator.stats` hands out a copy."""

    requests: int = 0
    list_requests: int = 0
    faults_served: dict[str, int] = field(default_factory=dict)
    responses_by_status: dict[int, int] = field(default_factory=dict)
    ignored_params: dict[str, int] = field(default_factory=dict)  # unknown query parameters

    def to_json(self) -> bytes:
        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)


class _Recorder:
    """`Stats` behind a lock: every handler thread updates it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = Stats()

    def count(self, *, listing: bool = False) -> None:
        with self._lock:
            self._stats.requests += 1
            self._stats.list_requests += listing

    def tally(self, counter: str, key: str | int) -> None:
        with self._lock:
            values: dict[Any, int] = getattr(self._stats, counter)
            values[key] = values.get(key, 0) + 1

    def snapshot(self) -> Stats:
        with self._lock:
            return replace(
                self._stats,
                faults_served=dict(self._stats.faults_served),
                responses_by_status=dict(self._stats.responses_by_status),
                ignored_params=dict(self._stats.ignored_params),
            )


# --- HTTP ----------------------------------------------------------------------------------------

_REASONS = {s.value: s.phrase for s in HTTPStatus}


def _bearer(authorization: str | None) -> str | None:
    scheme, _, key = (authorization or "").strip().partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries a Content-Length
    disable_nagle_algorithm = True  # small answers must not wait for delayed ACKs
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a line per request would drown benchmark output."""

    def send_response(self, code: int, message: str | None = None) -> None:
        """Only stdlib error paths (malformed requests) get here; give them a request id too."""
        super().send_response(code, message)
        self.send_header("x-request-id", f"req_{secrets.token_hex(16)}")

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""  # always drain: keep-alive framing
        path, _, query = self.path.partition("?")
        emulator = self.server.emulator
        listing = path == LIST_PATH and self.command == "GET"
        emulator._stats.count(listing=listing)
        if listing:
            self._list(emulator, query)
        elif path.startswith("/_emulator/"):
            self._control(emulator, path, body)
        else:
            self.send(Canned(404, api_error(f"Invalid URL ({self.command} {path})")))

    do_POST = do_PUT = do_DELETE = do_GET

    def send(self, canned: Canned, body: bytes | None = None) -> None:
        """Write status line, headers and body in one write (no Nagle/delayed-ACK stalls)."""
        body = canned.body if body is None else body
        self.wfile.write(self._head(canned, len(body)) + body)

    def _head(self, canned: Canned, length: int) -> bytes:
        head = [
            f"HTTP/1.1 {canned.status} {_REASONS.get(canned.status, '')}",
            f"Content-Type: {canned.content_type}",
            f"Content-Length: {length}",
            f"x-request-id: req_{secrets.token_hex(16)}",
            f"Date: {formatdate(usegmt=True)}",
            *(f"{name}: {value}" for name, value in canned.headers),
        ]
        if self.close_connection:
            head.append("Connection: close")
        self.server.emulator._stats.tally("responses_by_status", canned.status)
        return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n"

    def _list(self, emulator: Emulator, query: str) -> None:
        fault = emulator._faults.next()
        kind = fault.kind if fault is not None else None
        if fault is not None:
            emulator._stats.tally("faults_served", fault.kind)
        if kind == "reset":
            self.server.reset_on_close(self.connection)
            self.close_connection = True
            return
        delay = emulator.page_delay + (fault.delay if fault and kind == "timeout" else 0.0)
        if delay > 0 and emulator._stopping.wait(delay):
            self.close_connection = True  # stopped while waiting: hang up
            return
        authorization = self.headers.get("Authorization")
        if fault is not None and fault.kind not in DELIVERY_FAULTS:
            self.send(canned_response(fault, _bearer(authorization) or ""))
            return
        answer = emulator._answer(query, authorization)
        if kind == "truncated":
            self.send(answer, answer.body[: len(answer.body) // 2])
        elif kind == "concatenated":
            self.send(answer, answer.body + answer.body)
        else:
            self.send(answer)

    def _control(self, emulator: Emulator, path: str, body: bytes) -> None:
        if not ipaddress.ip_address(self.client_address[0]).is_loopback:
            self.send(Canned(403, api_error("Control endpoints answer loopback clients only.")))
        elif (self.command, path) == ("GET", "/_emulator/events"):
            self._stream(emulator._store.blobs())
        else:
            try:
                self.send(emulator._control(self.command, path, body))
            except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
                self.send(bad_request(f"{type(exc).__name__}: {exc}"))

    def _stream(self, blobs: list[bytes]) -> None:
        """NDJSON without building one huge body: the length is known from the cached bytes."""
        length = sum(len(b) + 1 for b in blobs)
        self.wfile.write(self._head(Canned(200, b"", "application/x-ndjson"), length))
        for start in range(0, len(blobs), 4096):
            self.wfile.write(b"".join(b + b"\n" for b in blobs[start : start + 4096]))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # benchmarks open many connections at once; 5 would drop SYNs

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        self._conns: set[socket.socket] = set()
        self._resets: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks up the host's FQDN, which can stall on DNS: skip that.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def reset_on_close(self, conn: socket.socket) -> None:
        """Make closing this connection send RST instead of FIN (SO_LINGER with zero timeout)."""
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with self._conns_lock:
            self._resets.add(conn)

    def shutdown_request(self, request: Any) -> None:
        with self._conns_lock:
            self._conns.discard(request)
            reset = request in self._resets
            self._resets.discard(request)
        if reset:
            request.close()  # no shutdown(SHUT_WR) first: that would send a FIN
        else:
            super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Wake every handler blocked on a keep-alive read so its thread ends."""
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer (timeouts, resets, stop()) are routine here.
        if not isinstance(sys.exc_info()[1], OSError):
            _log.exception("emulator request failed")


class _Server6(_Server):
    address_family = socket.AF_INET6


# --- the public API ------------------------------------------------------------------------------


class Emulator:
    """`GET /v1/organization/audit_logs` served from memory on loopback, with injectable faults."""

    _order: Order

    def __init__(
        self,
        *,
        api_key: str = "sk-admin-emulator-demo",
        events: Iterable[Event] | None = None,
        order: Order = "desc",
        host: str = "127.0.0.1",
        port: int = 0,
        audit_logging_enabled: bool = True,
        keys_without_permission: Iterable[str] = (),
        page_delay: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.audit_logging_enabled = audit_logging_enabled
        self.keys_without_permission = frozenset(keys_without_permission)
        self.page_delay = page_delay  # seconds added to every list response
        self.order = order
        self.host = host
        self._port = port
        self._store = _Store()
        self._faults = FaultSchedule(seed)
        self._stats = _Recorder()
        self._rng = random.Random(seed)  # noqa: S311 -- seeds for late events, not secrets
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        if events is not None:
            self._store.add(events)

    # lifecycle

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, self._port), self)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # bounds how long stop() waits for the accept loop
            name=f"emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections, close the socket; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        self._stopping.set()  # wakes handlers sleeping in a timeout fault or page_delay
        server.shutdown()
        server.drop_connections()
        server.server_close()
        thread.join()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/v1"

    @property
    def order(self) -> Order:
        return self._order

    @order.setter
    def order(self, value: Order) -> None:
        if value not in ("desc", "asc"):
            raise ValueError(f"order must be 'desc' or 'asc', got {value!r}")
        self._order = value

    # data, faults, stats

    def add_events(self, events: Iterable[Event]) -> None:
        """Add events; the next request sees them in their sorted place (late arrival)."""
        self._store.add(events)

    def add_late_events(
        self, count: int, *, max_age: int, seed: int | None = None, now: int | None = None
    ) -> list[Event]:
        """Generate and add `count` events with `effective_at` in [now - max_age, now)."""
        now = int(time.time()) if now is None else now
        seed = self._rng.getrandbits(64) if seed is None else seed
        events = generate_events(count, start=now - max_age, end=now, seed=seed)
        self.add_events(events)
        return events

    def events(self) -> list[Event]:
        """Ground truth: every event held (decoded from the bytes served), ascending by key."""
        return [orjson.loads(blob) for blob in self._store.blobs()]

    def inject(self, fault: Fault) -> None:
        self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def stats(self) -> Stats:
        return self._stats.snapshot()

    # answers

    def _answer(self, query: str, authorization: str | None) -> Canned:
        """The API's answer to one list request, faults aside."""
        key = _bearer(authorization)
        if key is None:
            return missing_key()
        if key in self.keys_without_permission:
            return missing_scope()
        if key != self.api_key:
            return invalid_key(key)
        if not self.audit_logging_enabled:
            return logging_disabled()
        try:
            q = _parse_query(query)
            page = self._store.page(q, self._order)
        except ApiError as exc:
            return exc.canned
        for name in q.ignored:
            self._stats.tally("ignored_params", name)
        return Canned(200, page.body())

    def _control(self, method: str, path: str, body: bytes) -> Canned:
        """One `/_emulator/...` request other than the streamed NDJSON dump."""
        route = _CONTROL_ROUTES.get((method, path))
        if route is None:
            return Canned(404, api_error(f"Invalid URL ({method} {path})"))
        result = route(self, orjson.loads(body) if body else None)
        return Canned(200, orjson.dumps({"ok": True} if result is None else result))


def _post_events(emulator: Emulator, events: Any) -> object:
    if not isinstance(events, list):
        raise ValueError("expected a JSON array of events")
    emulator.add_events(events)
    return {"added": len(events)}


def _post_late(emulator: Emulator, args: Any) -> object:
    if not isinstance(args, dict) or not {"count", "max_age"} <= set(args) <= _LATE_KEYS:
        raise ValueError('expected {"count": N, "max_age": S} (optional "seed", "now")')
    return emulator.add_late_events(**args)


def _put_order(emulator: Emulator, args: Any) -> None:
    # The setter rejects anything but "desc" and "asc".
    emulator.order = cast(Order, args.get("order") if isinstance(args, dict) else args)


_LATE_KEYS = {"count", "max_age", "seed", "now"}
_CONTROL_ROUTES: dict[tuple[str, str], Callable[[Emulator, Any], object]] = {
    ("POST", "/_emulator/events"): _post_events,
    ("POST", "/_emulator/late"): _post_late,
    ("POST", "/_emulator/faults"): lambda emulator, args: emulator.inject(Fault.from_json(args)),
    ("DELETE", "/_emulator/faults"): lambda emulator, _: emulator.clear_faults(),
    ("GET", "/_emulator/stats"): lambda emulator, _: orjson.loads(emulator.stats.to_json()),
    ("PUT", "/_emulator/order"): _put_order,
}
