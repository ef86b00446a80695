"""Wiring: config -> clients, sinks, workers, pipelines; the `run` loop for once and follow mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from shipper.config.secret_ref import sink_section
from shipper.config.settings import (
    Config,
    SourceSettings,
    read_every_secret,
    sink_plugins,
    sink_takes,
)
from shipper.errors import (
    ConfigError,
    Interrupted,
    SinkError,
    SinksBehindError,
    SourceRefusedError,
    SourceUnavailableError,
)
from shipper.pipeline import deadletter
from shipper.pipeline.cursor import Cursor
from shipper.pipeline.cursor_store import CursorStore, StateLock
from shipper.pipeline.cycle import CycleReport, Pipeline, initial_high_water
from shipper.pipeline.delivery import SinkWorker, Window
from shipper.pipeline.orphan_cursors import warn_orphans
from shipper.pipeline.privacy import MIN_HASH_KEY_CHARS, SinkView, sink_view
from shipper.pipeline.sink import Sink, SinkContext, SinkSettings
from shipper.runtime import stopping
from shipper.runtime.metrics import HealthServer, Metrics
from shipper.secrets import SecretUnavailableError
from shipper.source import quarantine
from shipper.source.audit_log.client import admin_key_client
from shipper.source.chatgpt_compliance.source import compliance_client
from shipper.source.contract import Source
from shipper.source.quarantine import Quarantine

if TYPE_CHECKING:
    from shipper.runtime.progress import BackfillProgress

log = structlog.get_logger("shipper")

ClientFactory = Callable[[SourceSettings, Metrics | None], Source]

# After a stop request (SIGTERM), the longest a `shipper run` process takes to exit; the window
# in flight is abandoned well before (its requests are cut, its waits end), this bounds the rest.
# Below the deploy files' 60 s (TimeoutStopSec, terminationGracePeriodSeconds).
STOP_GRACE = 20.0
# Follow mode: the longest pause after consecutive failed cycles (doubling from poll_interval).
MAX_BACKOFF = 300.0


def _cycle_could_not_run(failure: BaseException) -> bool:
    """Follow mode backs off after these: the source failed or the cycle crashed (a sink that
    stayed behind, or a stop, says nothing about whether the next cycle can run)."""
    return not isinstance(failure, SinkError | SinksBehindError | Interrupted)


# Each `[source]` type and how to connect to it (see `shipper.source.contract`).
# A compliance source runs as one source per event type (`Config.all_sources`).
SOURCE_TYPES: dict[str, ClientFactory] = {
    "audit_log": admin_key_client,
    "chatgpt_compliance": compliance_client,
}


def connect_source(settings: SourceSettings, metrics: Metrics | None = None) -> Source:
    """A client for the source `settings` describe, of the type its `type` names."""
    return SOURCE_TYPES[settings.type](settings, metrics)


def create_sink(config: Config, settings: SinkSettings) -> Sink:
    plugin = sink_plugins()[settings.type]
    context = SinkContext(state_dir=config.state.dir, config_path=config.path)
    return plugin.create(settings, context)


def view_of(config: Config, settings: SinkSettings) -> SinkView | None:
    """What the sink may see of each event (its `event_types` and `privacy` keys)."""
    privacy = settings.privacy
    key = None
    if privacy is not None and privacy.hash_key is not None:
        section = sink_section(settings.name)
        key = privacy.hash_key.read(section, config.path)
        if len(key.get_secret_value()) < MIN_HASH_KEY_CHARS:  # guessable, and too short to mask
            raise ConfigError(
                f"the key is shorter than {MIN_HASH_KEY_CHARS} characters: use a random one, "
                "e.g. the output of `openssl rand -hex 32`",
                path=str(config.path) if config.path else None,
                key=f"{section}: privacy.hash_key",
            )
    return sink_view(settings.event_types, privacy, key)


class OpenedSink:
    """A sink and whether it opened; one that failed to open is tried again next cycle."""

    def __init__(self, name: str, sink: Sink, view: SinkView | None = None) -> None:
        self.name = name
        self.sink = sink
        self.view = view
        self.is_open = False
        self.worker: SinkWorker | None = None  # the last cycle's, maybe still delivering

    def ensure_open(self) -> str | None:
        """None when open, else the reason it could not be opened."""
        if not self.is_open:
            try:
                self.sink.open()
            except (SinkError, SecretUnavailableError, OSError) as exc:
                # After start-up (where every secret was read), a secret that went missing
                # fails this sink only, and it is tried again next cycle.
                self.sink.close()
                log.error("sink_open_failed", sink=self.name, error=str(exc))
                return str(exc)
            self.is_open = True
        return None


@contextmanager
def open_sinks(config: Config) -> Iterator[dict[str, OpenedSink]]:
    """Every configured sink, created; closed on exit whatever happened."""
    with ExitStack() as stack:
        sinks: dict[str, OpenedSink] = {}
        for settings in config.sinks:
            sink = create_sink(config, settings)
            stack.callback(sink.close)
            sinks[settings.name] = OpenedSink(settings.name, sink, view_of(config, settings))
        yield sinks


def make_workers(
    config: Config,
    source: SourceSettings,
    sinks: dict[str, OpenedSink],
    now: float,
    metrics: Metrics | None = None,
) -> list[SinkWorker]:
    store = CursorStore(config.state.dir, source.name)
    workers = []
    for settings in config.sinks:
        if not sink_takes(settings, source):
            continue
        cursor = store.load(settings.name)
        new_cursor = cursor is None
        if cursor is None:
            # Recorded at once so `status` shows a new sink's lag even if it never delivers.
            cursor = Cursor(high_water=initial_high_water(source, now))
            store.save(settings.name, cursor)
        opened = sinks[settings.name]
        worker = SinkWorker(
            name=settings.name,
            sink=opened.sink,
            cursor=cursor,
            new_cursor=new_cursor,
            store=store,
            dead_letter_path=settings.dead_letter_path
            or deadletter.default_path(config.state.dir, settings.name),
            lookback=int(source.lookback),
            source=source.name,
            metrics=metrics,
            view=opened.view,
        )
        if opened.worker is not None and opened.worker.busy:
            # A sink is used by one thread at a time: this cycle goes on without it.
            worker.report.state = "lagging"
            worker.report.error = "still delivering a window of an earlier cycle"
        elif (problem := opened.ensure_open()) is not None:
            worker.report.state, worker.report.error = "failed", problem
        else:
            opened.worker = worker
        workers.append(worker)
    return workers


@dataclass(slots=True)
class RunOutcome:
    """What a run did: its cycles' reports, and what went wrong in its last cycle (one error per
    source that failed; none when every sink caught up). The CLI makes the exit code of it."""

    reports: list[CycleReport] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)


class _Observer:
    """Feeds a cycle's windows to the metrics and, on a terminal, a progress bar."""

    def __init__(self, source: str, metrics: Metrics | None, progress: bool) -> None:
        self.source = source
        self.metrics = metrics
        self.bar: BackfillProgress | None = None
        if progress:
            from shipper.runtime.progress import BackfillProgress

            self.bar = BackfillProgress(source)

    def begin(self, start: int, end: int) -> None:
        if self.bar is not None:
            self.bar.begin(start, end)

    def window(self, window: Window) -> None:
        if self.metrics is not None:
            self.metrics.liveness.beat()
            self.metrics.fetched.labels(self.source).inc(len(window.events))
        if self.bar is not None:
            self.bar.window(window)

    def end(self) -> None:
        if self.bar is not None:
            self.bar.end()


def warn_beyond_retention(source: SourceSettings, workers: list[SinkWorker], now: float) -> None:
    """A sink further behind than the API keeps history may have lost events for good: say so."""
    for worker in workers:
        behind = now - worker.cursor.high_water
        if behind > source.retention:
            log.error(
                "sink_behind_retention",
                source=source.name,
                sink=worker.name,
                behind_days=round(behind / 86400, 1),
                retention_days=round(source.retention / 86400, 1),
                meaning="events older than the API's retention are gone for this sink; "
                "catching up now with what the API still holds",
            )


def _log_cycle(report: CycleReport, seconds: float, client: Source) -> None:
    log.info(
        "cycle_complete",
        source=report.source,
        windows=report.windows,
        fetched=report.fetched,
        requests=client.requests,
        retries=client.retries,
        seconds=round(seconds, 3),
        interrupted=report.interrupted,
        sinks={
            name: {"state": r.state, "delivered": r.delivered, "dead_lettered": r.dead_lettered}
            | ({"error": r.error} if r.error else {})
            for name, r in report.sinks.items()
        },
    )


@dataclass
class Runner:
    """Runs cycles over every source; one source's failure does not stop the others."""

    config: Config
    once: bool
    stop: threading.Event
    metrics: Metrics
    progress: bool = False
    client_factory: ClientFactory = connect_source
    on_cycle: Callable[[CycleReport], None] | None = None
    outcome: RunOutcome = field(default_factory=RunOutcome)

    def cycle(
        self, sinks: dict[str, OpenedSink], clients: dict[str, Source]
    ) -> list[BaseException]:
        """One cycle over every source; what went wrong, one error per source that failed."""
        failures: list[BaseException] = []
        for source in self.config.all_sources:
            if self.stop.is_set():
                break
            if not any(sink_takes(s, source) for s in self.config.sinks):
                continue  # every sink's `sources` names others: nothing to read it for
            failure = self._source_cycle(source, sinks, clients[source.name])
            if failure is not None:
                failures.append(failure)
        return failures

    def _source_cycle(
        self, source: SourceSettings, sinks: dict[str, OpenedSink], client: Source
    ) -> BaseException | None:
        began = time.monotonic()
        workers = make_workers(self.config, source, sinks, time.time(), self.metrics)
        warn_beyond_retention(source, workers, time.time())
        stall = None if self.once else max(source.poll_interval, 30.0)
        observer = _Observer(source.name, self.metrics, self.progress)
        pipeline = Pipeline(
            source, client, workers, stop=self.stop, stall_timeout=stall, observer=observer
        )
        try:
            report = pipeline.run_cycle()
        except Interrupted as exc:
            log.info("cycle_interrupted", source=source.name, reason="stop requested")
            self.metrics.cycles.labels(source.name, "interrupted").inc()
            return exc
        except (SourceUnavailableError, SourceRefusedError, SinkError) as exc:
            # With one source this ends a --once run, and a refusal (bad key) ends any run; with
            # several, one customer's revoked key or outage must not stop the others.
            self.metrics.cycles.labels(source.name, "error").inc()
            log.error("cycle_failed", source=source.name, error=str(exc))
            single = len(self.config.all_sources) == 1
            if single and (self.once or isinstance(exc, SourceRefusedError)):
                raise
            return exc
        except Exception as exc:
            # A bug, or an answer nobody foresaw: --once ends with it; follow mode must not
            # (a crash loop under a supervisor), so it logs it whole and tries again later.
            self.metrics.cycles.labels(source.name, "crashed").inc()
            if self.once:
                raise
            log.exception("cycle_crashed", source=source.name)
            return exc
        self._record(source, report, workers, time.monotonic() - began, client)
        if report.ok:
            return None
        if self.stop.is_set():
            return Interrupted("stop requested")
        return SinksBehindError(f"source {source.name!r}: a sink did not catch up (see its error)")

    def _record(
        self,
        source: SourceSettings,
        report: CycleReport,
        workers: list[SinkWorker],
        seconds: float,
        client: Source,
    ) -> None:
        self.outcome.reports.append(report)
        self.metrics.liveness.beat()
        _log_cycle(report, seconds, client)
        now = time.time()
        for worker in workers:
            labels = (source.name, worker.name)
            self.metrics.sink_up.labels(*labels).set(1 if worker.active else 0)
            self.metrics.lag.labels(*labels).set(now - worker.cursor.high_water)
        result = "ok" if report.ok else "sink_failed"
        self.metrics.cycles.labels(source.name, result).inc()
        if report.ok:
            self.metrics.last_success.labels(source.name).set(now)
            self.metrics.last_ready = now
        if self.on_cycle:
            self.on_cycle(report)


def _ready_after(config: Config) -> float:
    if config.metrics.ready_after is not None:
        return config.metrics.ready_after
    return 3 * max(s.poll_interval for s in config.all_sources) + 60.0


def _live_after(config: Config) -> float:
    if config.metrics.live_after is not None:
        return config.metrics.live_after
    return 3 * max(s.poll_interval for s in config.all_sources) + 60.0


def pause_after(poll: float, failures: int) -> float:
    """Follow mode's pause before the next cycle: `poll`, doubled per consecutive failed cycle."""
    if failures <= 1:
        return poll
    return min(poll * 2.0 ** min(failures - 1, 32), max(poll, MAX_BACKOFF))


def run(
    config: Config,
    *,
    once: bool,
    stop: threading.Event | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
    client_factory: ClientFactory = connect_source,
    progress: bool = False,
    on_listening: Callable[[int], None] | None = None,
    stop_grace: float | None = None,
    stop_grace_exit_code: int = 1,
    metrics: Metrics | None = None,
) -> RunOutcome:
    """Run one cycle (`once`) or cycle every `poll_interval` until `stop` is set.

    Every wait observes `stop` (see `shipper.runtime.stopping`); with `stop_grace`, the process exits
    hard (with `stop_grace_exit_code`) if it is still running that long after the stop request.
    """
    read_every_secret(config)
    runner = Runner(
        config,
        once,
        stop or threading.Event(),
        metrics or Metrics(),
        progress,
        client_factory,
        on_cycle,
    )
    poll = min(s.poll_interval for s in config.all_sources)
    liveness = runner.metrics.liveness
    with (
        stopping.watching(
            runner.stop,
            grace=stop_grace,
            grace_exit_code=stop_grace_exit_code,
            on_wait=liveness.waiting,
        ),
        StateLock(config.state.dir),
        open_sinks(config) as sinks,
        ExitStack() as stack,
    ):
        warn_orphans(config)
        clients = {s.name: client_factory(s, runner.metrics) for s in config.all_sources}
        for name, client in clients.items():  # unreadable entries are kept beside the cursors
            path = quarantine.default_path(config.state.dir, name)
            client.quarantine = Quarantine(path, name, runner.metrics)
            client.spool_dir = config.state.dir
        for client in clients.values():
            stack.callback(client.close)
        if not once and config.metrics.listen:
            server = HealthServer(
                config.metrics.listen, runner.metrics, _ready_after(config), _live_after(config)
            )
            stack.callback(server.stop)
            server.start()
            log.info("metrics_listening", address=config.metrics.listen, port=server.port)
            if on_listening:
                on_listening(server.port)
        failures = 0
        while True:
            failed = runner.cycle(sinks, clients)
            runner.outcome.failures = failed
            if config.metrics.textfile is not None:
                runner.metrics.write_textfile(config.metrics.textfile)
            if once or runner.stop.is_set():
                break
            failures = failures + 1 if any(map(_cycle_could_not_run, failed)) else 0
            wait = pause_after(poll, failures)
            liveness.waiting(wait)
            if runner.stop.wait(wait):
                break
    if not once:  # follow mode ends only when asked to: a clean stop
        runner.outcome.failures = []
    return runner.outcome
