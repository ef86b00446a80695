"""The stop request as every wait sees it: pauses end at once, a stuck process exits after its grace."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest

from shipper.cli.exit_codes import ExitCode
from shipper.errors import Interrupted
from shipper.runtime import stopping


def test_a_pause_ends_with_interrupted_as_soon_as_stop_is_requested() -> None:
    """A pause under watching(stop) ends with Interrupted as soon as stop is set, not when the pause would end."""
    stop = threading.Event()
    with stopping.watching(stop):
        threading.Timer(0.2, stop.set).start()
        began = time.monotonic()
        with pytest.raises(Interrupted):
            stopping.pause(120)  # a Retry-After: 120
        assert time.monotonic() - began < 5
        with pytest.raises(Interrupted):
            stopping.pause(0.01)  # and every later one at once


def test_runs_ending_out_of_order_leave_no_stale_stop_request_behind() -> None:
    """Two overlapping runs in one process (tests): once both ended, waits simply sleep again."""
    first, second = threading.Event(), threading.Event()
    outer = stopping.watching(first)
    inner = stopping.watching(second)
    outer.__enter__()
    inner.__enter__()
    first.set()
    outer.__exit__(None, None, None)  # the first run ends before the second
    assert not stopping.requested()  # the second run's stop is the one in force
    inner.__exit__(None, None, None)
    assert not stopping.requested()
    stopping.pause(0.01)  # no Interrupted: no run, no stop request


def test_a_process_still_busy_after_the_grace_period_exits_hard_with_130() -> None:
    """Whatever is stuck (here a plain sleep nothing interrupts), the process ends `grace` after the stop."""
    script = textwrap.dedent(
        """
        import threading, time
        from shipper.runtime import stopping
        stop = threading.Event()
        with stopping.watching(stop, grace=1.0, grace_exit_code=130, drain=0.2):
            stop.set()
            time.sleep(60)
        """
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == ExitCode.INTERRUPTED, done.stderr
    assert time.monotonic() - began < 20
    assert "stop_grace_exceeded" in done.stdout + done.stderr
