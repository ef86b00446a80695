"""The process's exit codes: the one table from what went wrong to the number an operator sees.

Only the CLI decides exit codes; the runtime reports the errors it met (`RunOutcome.failures`).
`shipper --help` and docs/operations.md list the same codes (a test compares them).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from shipper.errors import (
    ConfigError,
    Interrupted,
    LockHeldError,
    SinkError,
    SinksBehindError,
    SourceRefusedError,
    SourceUnavailableError,
    StateDamagedError,
)

if TYPE_CHECKING:
    from shipper.runtime.app import RunOutcome


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    CONFIG = 2
    SOURCE_REFUSED = 3
    SOURCE_UNAVAILABLE = 4
    SINK_FAILED = 5
    LOCKED = 6
    STATE_DAMAGED = 7
    INTERRUPTED = 130


# Most specific class first. Anything else (a bug, an answer nobody foresaw) is INTERNAL.
_EXIT_CODES: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (Interrupted, ExitCode.INTERRUPTED),
    (KeyboardInterrupt, ExitCode.INTERRUPTED),
    (ConfigError, ExitCode.CONFIG),
    (LockHeldError, ExitCode.LOCKED),
    (StateDamagedError, ExitCode.STATE_DAMAGED),
    (SourceRefusedError, ExitCode.SOURCE_REFUSED),
    (SourceUnavailableError, ExitCode.SOURCE_UNAVAILABLE),
    (SinkError, ExitCode.SINK_FAILED),
    (SinksBehindError, ExitCode.SINK_FAILED),
)


def exit_code_of(error: BaseException | None) -> ExitCode:
    """The exit code that reports `error` (None: success)."""
    if error is None:
        return ExitCode.OK
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return ExitCode.INTERNAL


def exit_code_of_run(outcome: RunOutcome) -> ExitCode:
    """A run's exit code: its gravest failure's (the lowest code; OK when it met none)."""
    return min((exit_code_of(failure) for failure in outcome.failures), default=ExitCode.OK)
