"""The example sink: appends each event, rendered in its configured format, as one line to `path`.

Everything it needs from shipper comes from `shipper.sink_api`, the one module a sink imports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from shipper.sink_api import (
    JSON_FORMATS,
    AuditEvent,
    Rejection,
    SinkContext,
    SinkRetryableError,
    SinkSettings,
    open_append,
    renderer,
    write_all,
)


class ExampleSettings(SinkSettings):
    """`type = "example"`."""

    path: str = Field(description="The JSON-lines file events are appended to.")
    allowed_formats: ClassVar[tuple[str, ...]] = tuple(sorted(JSON_FORMATS))


class ExampleSink:
    def __init__(self, settings: ExampleSettings) -> None:
        self.name = settings.name
        self.path = Path(settings.path)
        self.render = renderer(settings.format)
        self.fd: int | None = None

    def open(self) -> None:
        try:
            self.fd = open_append(self.path)
        except OSError as exc:
            raise SinkRetryableError(
                self.name, f"cannot open {self.path}: {exc.strerror}"
            ) from None

    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        # A rendered event is one line: JSON escapes every newline inside strings.
        data = b"".join(self.render(event) + b"\n" for event in batch)
        try:
            if self.fd is None:
                self.open()
            assert self.fd is not None
            write_all(self.fd, data)
        except OSError as exc:
            raise SinkRetryableError(
                self.name, f"cannot write {self.path}: {exc.strerror}"
            ) from None
        return []

    def flush(self) -> None:
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                raise SinkRetryableError(
                    self.name, f"cannot sync {self.path}: {exc.strerror}"
                ) from None

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def probe(self) -> str:
        return f"appending to {self.path}"


class ExamplePlugin:
    settings_model = ExampleSettings

    def create(self, settings: Any, context: SinkContext) -> ExampleSink:
        return ExampleSink(settings)


plugin = ExamplePlugin()
