"""Structured logging: JSON lines off a terminal, readable console on one, secrets masked always."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal, TextIO

import orjson
import structlog

from shipper.secrets import redact

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_secrets(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: mask every known secret in every string a log line carries."""
    return {key: _scrub(value) for key, value in event_dict.items()}


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if console
        else structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def component_logger(kind: Literal["source", "sink"], name: str) -> Any:
    """A logger bound once to one source or sink: every line it writes names it twice over,
    `component` (the same key for sources and sinks, e.g. on every `retrying` line) and `source`
    or `sink` (the key the pipeline's own lines about it use, so one filter finds both).

    Lazy, like `structlog.get_logger`: it follows `configure` even when made before it.
    """
    return structlog.get_logger(f"shipper.{kind}", component=name, **{kind: name})


def sink_logger(name: str) -> Any:
    """The logger of the sink called `name` (see `component_logger`)."""
    return component_logger("sink", name)


def source_logger(name: str) -> Any:
    """The logger of the source called `name` (see `component_logger`)."""
    return component_logger("source", name)
