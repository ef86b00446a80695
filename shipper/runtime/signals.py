"""SIGTERM and SIGINT as a stop request (follow mode, the emulator); SIGHUP as a reopen request."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def stop_handler(stop: threading.Event) -> Callable[[int, FrameType | None], None]:
    """A signal handler that sets `stop` from a thread of its own.

    Handlers run in the main thread between two bytecodes, possibly while that thread holds the
    Event's internal lock inside `stop.wait()`; `stop.set()` right there would wait for that
    lock forever (a follow-mode process ignoring SIGTERM, now and then, under load).
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=stop.set, name="stop-signal", daemon=True).start()

    return handler


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set `stop`."""
    handler = stop_handler(stop)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


class _ReopenRequests:
    """Bumped by SIGHUP; file sinks compare it with the value they opened under before writing.

    A plain int: the handler may neither take a lock nor start work the main thread waits on.
    """

    generation = 0


def reopen_generation() -> int:
    """How many reopen requests (SIGHUP) this process has received."""
    return _ReopenRequests.generation


def _request_reopen(signum: int, frame: FrameType | None) -> None:
    _ReopenRequests.generation += 1


def install_reopen_handler() -> None:
    """SIGHUP asks file sinks to reopen their files (after logrotate), as nginx and rsyslog do."""
    signal.signal(signal.SIGHUP, _request_reopen)
