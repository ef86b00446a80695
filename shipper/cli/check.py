"""`shipper check`: validate the config, then probe the API and every sink; print a verdict table."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from shipper.cli.exit_codes import ExitCode, exit_code_of
from shipper.config.settings import Config, SourceSettings, load_config
from shipper.errors import ShipperError
from shipper.runtime.app import connect_source, create_sink, view_of
from shipper.secrets import redact


def _probe_api(source: SourceSettings) -> str:
    settings = source.model_copy(update={"retry_max_attempts": 2, "retry_max_time": 10.0})
    client = connect_source(settings)
    try:
        return client.probe()
    finally:
        client.close()


def _probe_sink(config: Config, index: int) -> str:
    view_of(config, config.sinks[index])  # its privacy hash key is read as at start-up
    sink = create_sink(config, config.sinks[index])
    try:
        sink.open()
        return sink.probe()
    finally:
        sink.close()


def _verdict(component: str, probe: Callable[[], str]) -> tuple[str, bool, str, ExitCode]:
    try:
        return (component, True, probe(), ExitCode.OK)
    except ShipperError as exc:
        return (component, False, redact(str(exc)), exit_code_of(exc))
    except OSError as exc:
        return (component, False, redact(f"{type(exc).__name__}: {exc}"), ExitCode.SINK_FAILED)


def run_checks(config_path: Path) -> int:
    config = load_config(config_path)
    rows = [("config", True, f"{config_path} is valid", ExitCode.OK)]
    for source in config.all_sources:
        rows.append(_verdict(f"source {source.name}", partial(_probe_api, source)))
    for index, settings in enumerate(config.sinks):
        rows.append(
            _verdict(f"sink {settings.name} ({settings.type})", partial(_probe_sink, config, index))
        )
    width = max(len(r[0]) for r in rows)
    for component, ok, detail, _ in rows:
        print(f"{component:<{width}}  {'OK  ' if ok else 'FAIL'}  {detail}")
    codes = [code for *_, code in rows if code != ExitCode.OK]
    return int(min(codes)) if codes else 0
