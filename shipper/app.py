"""Wiring: config -> client, sinks, workers, pipeline; the `run` loop for once and follow mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import structlog

from shipper import deadletter
from shipper.config import Config, SourceSettings, sink_plugins
from shipper.delivery import SinkWorker
from shipper.errors import (
    ConfigError,
    ExitCode,
    ShipperError,
    SinkError,
    SourceUnavailableError,
)
from shipper.pipeline import CycleReport, Pipeline, initial_high_water
from shipper.secrets import SecretUnavailableError, read_secret
from shipper.sink import Sink, SinkContext, SinkSettings
from shipper.source import AuditLogClient
from shipper.state import CursorStore, StateLock
from shipper.windows import Cursor

log = structlog.get_logger("shipper")


def admin_key_client(settings: SourceSettings, **kwargs: object) -> AuditLogClient:
    try:
        key = read_secret(
            env=settings.api_key_env, file=settings.api_key_file, what="admin API key"
        )
    except SecretUnavailableError as exc:
        raise ConfigError(str(exc), key="source.api_key_env / source.api_key_file") from None
    return AuditLogClient(settings, key, **kwargs)  # type: ignore[arg-type]


def create_sink(config: Config, settings: SinkSettings) -> Sink:
    plugin = sink_plugins()[settings.type]
    context = SinkContext(state_dir=config.state.dir, config_path=config.path)
    return plugin.create(settings, context)


@contextmanager
def open_sinks(config: Config) -> Iterator[dict[str, Sink]]:
    """Every configured sink, opened; closed on exit whatever happened."""
    with ExitStack() as stack:
        sinks: dict[str, Sink] = {}
        for settings in config.sinks:
            sink = create_sink(config, settings)
            stack.callback(sink.close)
            sink.open()
            sinks[settings.name] = sink
        yield sinks


def make_workers(
    config: Config, source: SourceSettings, sinks: dict[str, Sink], now: float
) -> list[SinkWorker]:
    store = CursorStore(config.state.dir, source.name)
    workers = []
    for settings in config.sinks:
        cursor = store.load(settings.name)
        if cursor is None:
            cursor = Cursor(high_water=initial_high_water(source, now))
        workers.append(
            SinkWorker(
                name=settings.name,
                sink=sinks[settings.name],
                cursor=cursor,
                store=store,
                dead_letter_path=settings.dead_letter_path
                or deadletter.default_path(config.state.dir, settings.name),
                lookback=int(source.lookback),
            )
        )
    return workers


@dataclass(slots=True)
class RunOutcome:
    reports: list[CycleReport]
    exit_code: ExitCode


def _log_cycle(report: CycleReport, seconds: float, client: AuditLogClient) -> None:
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


def run(
    config: Config,
    *,
    once: bool,
    stop: threading.Event | None = None,
    on_cycle: Callable[[CycleReport], None] | None = None,
    client_factory: Callable[[SourceSettings], AuditLogClient] = admin_key_client,
) -> RunOutcome:
    """Run one cycle (`once`) or cycle every `poll_interval` until `stop` is set."""
    stop = stop or threading.Event()
    source = config.source
    reports: list[CycleReport] = []
    with StateLock(config.state.dir), open_sinks(config) as sinks:
        client = client_factory(source)
        try:
            while True:
                began = time.monotonic()
                workers = make_workers(config, source, sinks, time.time())
                stall = None if once else max(source.poll_interval, 30.0)
                pipeline = Pipeline(source, client, workers, stop=stop, stall_timeout=stall)
                try:
                    report = pipeline.run_cycle()
                except ShipperError as exc:
                    if once or not _transient(exc):
                        raise
                    log.error("cycle_failed", error=str(exc))
                else:
                    reports.append(report)
                    _log_cycle(report, time.monotonic() - began, client)
                    if on_cycle:
                        on_cycle(report)
                if once or stop.wait(source.poll_interval):
                    break
        finally:
            client.close()
    failed = [r for r in reports[-1:] if not r.ok]
    return RunOutcome(reports, ExitCode.SINK_FAILED if failed else ExitCode.OK)


def _transient(exc: ShipperError) -> bool:
    """In follow mode, an unavailable API or sink is waited out; a refusal (401/403) is not."""
    return isinstance(exc, SourceUnavailableError | SinkError)
