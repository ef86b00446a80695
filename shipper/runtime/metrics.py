"""Prometheus metrics, health endpoints and the node_exporter textfile.

Follow mode serves `/metrics`, `/healthz` (the process makes progress: see `Liveness`) and
`/readyz` (a cycle succeeded recently) on `[metrics] listen`, 127.0.0.1 by default. Cron mode can write the same
metrics to a textfile after each run.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST, write_to_textfile

from shipper.runtime.durable_files import ensure_dir


class Liveness:
    """When the process last made progress, for `/healthz`.

    Progress is an API answer, a window fetched or delivered, a cycle ended; a deliberate wait
    (the pause between cycles, a retry's back-off) counts as progress until it is due to end.
    A process frozen anywhere else (a deadlock, a wait nothing bounds) stops beating.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._last = clock()

    def beat(self) -> None:
        self._last = max(self._last, self.clock())

    def waiting(self, seconds: float) -> None:
        """A deliberate wait of `seconds` begins: alive until it is due to end."""
        self._last = max(self._last, self.clock() + max(seconds, 0.0))

    def stalled_for(self) -> float:
        """Seconds since the last progress (0 while a deliberate wait is running)."""
        return max(self.clock() - self._last, 0.0)


class Metrics:
    """Every metric the shipper exports, in its own registry (no process-global state)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.liveness = Liveness(clock)
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetched = Counter(
            "shipper_events_fetched", "Events read from the audit-log API.", ["source"], registry=r
        )
        self.delivered = Counter(
            "shipper_events_delivered",
            "Events a sink acknowledged.",
            ["source", "sink"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "shipper_events_dead_lettered",
            "Events a sink's receiver refused for good (see the dead-letter file).",
            ["source", "sink"],
            registry=r,
        )
        self.retries = Counter(
            "shipper_api_retries",
            "API requests retried, by cause.",
            ["source", "cause"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "shipper_api_request_duration_seconds",
            "Latency of audit-log API requests.",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.requests_allowed = Gauge(
            "shipper_api_requests_in_flight_limit",
            "API requests allowed in flight: source.concurrency, less while the API pushes back.",
            ["source"],
            registry=r,
        )
        self.lag = Gauge(
            "shipper_cursor_lag_seconds",
            "Now minus the sink's high-water mark.",
            ["source", "sink"],
            registry=r,
        )
        self.sink_up = Gauge(
            "shipper_sink_up",
            "1 if the sink's last cycle succeeded.",
            ["source", "sink"],
            registry=r,
        )
        self.last_success = Gauge(
            "shipper_last_successful_cycle_timestamp_seconds",
            "When a cycle last completed with every sink delivered to.",
            ["source"],
            registry=r,
        )
        self.cycles = Counter(
            "shipper_cycles", "Cycles run, by result.", ["source", "result"], registry=r
        )
        self.quarantined = Counter(
            "shipper_quarantined",
            "Entries the API listed that are not readable audit-log events, kept in the "
            "source's quarantine, by kind (see `shipper quarantine list`).",
            ["source", "kind"],
            registry=r,
        )
        self.outside_window = Counter(
            "shipper_events_outside_window",
            "Events the API returned outside the window asked for (delivered all the same).",
            ["source"],
            registry=r,
        )
        self.clock_skew = Gauge(
            "shipper_clock_skew_seconds",
            "This machine's clock minus the API's (its Date header), at the start of the last cycle.",
            ["source"],
            registry=r,
        )
        self.lateness = Histogram(
            "shipper_event_lateness_seconds",
            "First seen minus effective_at, for events found below a sink's high water (late arrivals).",
            ["source", "sink"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400),
            registry=r,
        )
        self.last_ready = 0.0

    def api_request_observer(self, source: str) -> Callable[[float], None]:
        """What the API client calls with each request's latency: a histogram and a heartbeat."""
        histogram = self.request_seconds.labels(source)

        def observe(seconds: float) -> None:
            histogram.observe(seconds)
            self.liveness.beat()

        return observe

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def write_textfile(self, path: Path) -> None:
        ensure_dir(path.parent)
        write_to_textfile(str(path), self.registry)  # writes a temp file and renames it


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: scrapes every few seconds would drown the useful lines."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._reply(200, self.server.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            stalled = self.server.metrics.liveness.stalled_for()
            live_after = self.server.live_after
            if live_after is None or stalled <= live_after:
                self._reply(200, b"ok\n")
            else:
                self._reply(503, f"stalled: no progress for {stalled:.0f}s\n".encode())
        elif path == "/readyz":
            age = time.time() - self.server.metrics.last_ready
            ready = age <= self.server.ready_after
            self._reply(200 if ready else 503, (b"ready\n" if ready else b"not ready\n"))
        else:
            self._reply(404, b"not found\n")

    def _reply(
        self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, listen: str, metrics: Metrics, ready_after: float, live_after: float | None = None
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.metrics = metrics
        self.ready_after = ready_after
        self.live_after = live_after
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), int(port)), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="metrics", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=10)
