"""The process's stop request, as every wait and every request sees it.

`app.run` scopes its stop event (`watching`). `pause` is the sleep of every retry and wait: once
stop is requested it raises `Interrupted` at once, so a SIGTERM during a `Retry-After: 120` ends
the run without waiting it out, the window in flight abandoned with its cursor unmoved. Requests
in flight get `DRAIN` seconds to finish (a window that is nearly done is committed); then the
`on_stop` callbacks run (`shipper.http.guard` shuts down the sockets of requests still in flight)
and `abandoning()` turns true. A process given a grace period exits hard if it is still running
that long after the stop: cursor files are written atomically, so that is as safe as SIGKILL, and
it keeps within a service manager's stop timeout whatever is stuck.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from shipper.errors import Interrupted

log = structlog.get_logger("shipper.runtime.stopping")

# How often the watcher looks at the stop event.
WATCH_INTERVAL = 0.2
# After a stop request, how long requests in flight may still finish before they are cut.
DRAIN = 5.0

_NEVER = threading.Event()  # never set: outside `watching`, waits simply sleep
_current = _NEVER
_scopes: list[tuple[threading.Event, Callable[[float], None] | None]] = []  # innermost last
_abandoning = threading.Event()  # set once the drain after a stop is over
_callbacks: list[Callable[[], None]] = []
_on_wait: Callable[[float], None] | None = None  # told of each wait (the liveness heartbeat)


def requested() -> bool:
    return _current.is_set()


def abandoning() -> bool:
    """Whether work in flight is being cut short (stop requested, the drain over)."""
    return _abandoning.is_set()


def raise_if_requested() -> None:
    if _current.is_set():
        raise Interrupted("stop requested")


def pause(seconds: float) -> None:
    """Sleep `seconds`; `Interrupted` as soon as stop is requested (at once if it already was)."""
    if _on_wait is not None:
        _on_wait(seconds)
    if _current.wait(max(seconds, 0.0)):
        raise Interrupted(f"stop requested during a wait of {seconds:.1f}s")


def on_stop(callback: Callable[[], None]) -> None:
    """Run `callback` (from the watcher thread) whenever a watched stop is requested."""
    _callbacks.append(callback)


@contextmanager
def watching(
    stop: threading.Event,
    *,
    grace: float | None = None,
    grace_exit_code: int = 1,
    on_wait: Callable[[float], None] | None = None,
    drain: float = DRAIN,
) -> Iterator[None]:
    """Make `stop` the event every `pause` observes; with `grace`, exit hard that long after it,
    with `grace_exit_code` (the CLI's code for an interrupted run).

    `on_wait` is told of every `pause` (its length) meanwhile.
    """
    global _current, _on_wait  # one stop request per process, seen by every thread
    scope = (stop, on_wait)
    _scopes.append(scope)
    _current, _on_wait = scope
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch,
        args=(stop, done, grace, grace_exit_code, drain),
        name="stop-watch",
        daemon=True,
    )
    watcher.start()
    try:
        yield
    finally:
        done.set()
        # Not simply the previous scope: runs in one process (tests) may end in any order.
        _scopes.remove(scope)
        _current, _on_wait = _scopes[-1] if _scopes else (_NEVER, None)
        _abandoning.clear()
        watcher.join()


def _watch(
    stop: threading.Event,
    done: threading.Event,
    grace: float | None,
    exit_code: int,
    drain: float,
) -> None:
    while not stop.wait(WATCH_INTERVAL):
        if done.is_set():
            return
    began = time.monotonic()
    if done.wait(drain):
        return
    _abandoning.set()
    for callback in list(_callbacks):
        callback()
    if grace is not None and not done.wait(max(grace - (time.monotonic() - began), 0.0)):
        log.error(
            "stop_grace_exceeded",
            grace_seconds=grace,
            meaning="still busy after the grace period; exiting now (cursors are safe, "
            "the window in flight is delivered again next run)",
        )
        sys.stderr.flush()
        os._exit(exit_code)
