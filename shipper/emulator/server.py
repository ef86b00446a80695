"""The emulator: an in-memory audit log served over real HTTP on loopback, with injectable faults.

Three layers, top to bottom: `Emulator` (the Python control API and the answer to one list
request), `handler` (stdlib HTTP/1.1 with keep-alive, faults applied to delivery), and `store`
(events sorted by `(effective_at, id)` in parallel arrays; pages are located by bisect
and built by joining each event's JSON bytes, serialized once on insertion; the event dicts
themselves are not kept, so a caller that drops its list frees them).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType

import msgspec
import orjson

from shipper.emulator.control import CONTROL_ROUTES
from shipper.emulator.events import Event, generate_events
from shipper.emulator.faults import (
    Canned,
    Fault,
    FaultSchedule,
    api_error,
    invalid_key,
    logging_disabled,
    missing_key,
    missing_scope,
    tenant_only_refused,
)
from shipper.emulator.handler import LIST_PATH, Server, Server6, bearer
from shipper.emulator.query import ApiError, Order, parse_query
from shipper.emulator.stats import Recorder, Stats
from shipper.emulator.store import Store

__all__ = ["LIST_PATH", "ApiError", "Emulator", "Order", "Stats"]


# How much older than the emulator's clock late events are at least (see `add_late_events`).
LATE_SETTLE = 10


def _real_time() -> float:
    return time.clock_gettime(time.CLOCK_REALTIME)


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
        max_concurrent_lists: int | None = None,
        pretty: bool = False,
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.audit_logging_enabled = audit_logging_enabled
        self.keys_without_permission = frozenset(keys_without_permission)
        self.page_delay = page_delay  # seconds added to every list response
        # A rate limiter in front of the API: a list request arriving while this many are being
        # answered gets a 429 at once (None: no limit).
        self.max_concurrent_lists = max_concurrent_lists
        self.pretty = pretty  # list pages indented, as many JSON APIs send them
        # An organization (or API version) that refuses `tenant_only` itself with a 400.
        self.tenant_only_supported = True
        # The API's own clock, sent as every answer's `Date`: the real clock (CLOCK_REALTIME,
        # which freezegun leaves alone, so a test can move the shipper's clock and not this
        # one), plus `clock_skew` seconds; a test may also replace `clock` outright.
        self.clock: Callable[[], float] = _real_time
        self.clock_skew = 0.0
        self.order = order
        self.host = host
        self._port = port
        self._store = Store()
        self._faults = FaultSchedule(seed)
        self._stats = Recorder()
        self._rng = random.Random(seed)  # noqa: S311 -- seeds for late events, not secrets
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        if events is not None:
            self._store.add(events)

    # lifecycle

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._stopping = threading.Event()
        server_class = Server6 if ":" in self.host else Server
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

    def add_poison(self, when: int, blob: bytes, *, place_id: str, tenant: bool = False) -> None:
        """Serve `blob` as one entry, byte for byte, where `(when, place_id)` sorts (a lone
        surrogate, no id, a bad time...): what the API might list and no reader can use.
        `place_id` is the listing's cursor past it; `events()` leaves the entry out."""
        self._store.add_poison(when, place_id, blob, tenant=tenant)

    def add_late_events(
        self, count: int, *, max_age: int, seed: int | None = None, now: int | None = None
    ) -> list[Event]:
        """Generate and add `count` events with `effective_at` in [now - max_age, now).

        `now` defaults to the emulator's clock less `LATE_SETTLE` seconds: a shipper run reads
        only up to `clock_safety_lag` before its clock, so an event dated later than that is not
        late but new (the run after next delivers it), and a test expecting the next run to
        deliver late events would otherwise fail now and then.
        """
        now = int(self.api_time()) - LATE_SETTLE if now is None else now
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

    def api_time(self) -> float:
        """The API's clock: what every answer's `Date` header says."""
        return self.clock() + self.clock_skew

    # answers

    def _answer(self, query: str, authorization: str | None) -> Canned:
        """The API's answer to one list request, faults aside."""
        key = bearer(authorization)
        if key is None:
            return missing_key()
        if key in self.keys_without_permission:
            return missing_scope()
        if key != self.api_key:
            return invalid_key(key)
        if not self.audit_logging_enabled:
            return logging_disabled()
        try:
            q = parse_query(query)
            if q.tenant_only and not self.tenant_only_supported:
                raise ApiError(tenant_only_refused())
            page = self._store.page(q, self._order)
        except ApiError as exc:
            return exc.canned
        for name in q.ignored:
            self._stats.tally("ignored_params", name)
        self._stats.listed(len(page.blobs))
        body = page.body()
        return Canned(200, msgspec.json.format(body, indent=2) if self.pretty else body)

    def _control(self, method: str, path: str, body: bytes) -> Canned:
        """One `/_emulator/...` request other than the streamed NDJSON dump."""
        route = CONTROL_ROUTES.get((method, path))
        if route is None:
            return Canned(404, api_error(f"Invalid URL ({method} {path})"))
        result = route(self, orjson.loads(body) if body else None)
        return Canned(200, orjson.dumps({"ok": True} if result is None else result))
