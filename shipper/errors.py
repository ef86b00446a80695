"""One exception tree, classified by what the caller should do.

Only the CLI turns these into exit codes (`shipper.cli.exit_codes`, the one table from error
class to exit code); everything below it raises, or reports the error it met.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipper.pipeline.sink import Progress


class ShipperError(Exception):
    """Base of every error the CLI reports as a message instead of a traceback."""


class ConfigError(ShipperError):
    """The configuration is unusable; the message names the file and the key."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        where = ":".join(p for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path = path
        self.key = key


class LockHeldError(ShipperError):
    """Another shipper process owns the state directory."""


class StateDamagedError(ShipperError):
    """A state file (cursor, dead letters, quarantine) cannot be read; the message names the file
    and what to do. Shipper refuses to guess: a guess could skip or lose events."""


class Interrupted(ShipperError):
    """A stop was requested (SIGTERM) during a wait or a request: the work in flight is abandoned."""


class SinksBehindError(ShipperError):
    """A cycle ended with a sink not caught up: its cursor stayed where it was (it said why)."""


class SourceError(ShipperError):
    """The audit-log API could not be read."""

    def __init__(
        self, message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        suffix = f" (x-request-id {request_id})" if request_id else ""
        super().__init__(message + suffix)
        self.status = status
        self.request_id = request_id


class SourceRefusedError(SourceError):
    """The API refused the request for a reason retrying cannot fix (400/401/403/404)."""


class SourceUnavailableError(SourceError):
    """Retries against the API were exhausted (5xx, 429, timeouts, garbled bodies)."""


class RetryableResponseError(Exception):
    """Internal signal to the retry loop: this attempt failed but another may succeed."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, cause: str = "body"
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.cause = cause


class SinkError(ShipperError):
    """A sink could not take the batch; its cursor stays where it was."""

    progress: Progress | None = None  # what the failing send had settled for good, if it knows

    def __init__(self, sink: str, message: str) -> None:
        super().__init__(f"sink {sink!r}: {message}")
        self.sink = sink


class SinkRetryableError(SinkError):
    """A transient failure (connection refused, 5xx, 429, timeout): try again later."""

    def __init__(self, sink: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(sink, message)
        self.retry_after = retry_after


class SinkRefusalsUnexplainedError(SinkRetryableError):
    """Events were refused, but nothing showed the receiver takes others: not yet their fault.

    The pipeline may send them again along with the next window's events, whose acceptance
    would settle it.
    """


class SinkFatalError(SinkError):
    """A failure no retry can fix (bad token, missing index): stop this sink and tell the operator."""
