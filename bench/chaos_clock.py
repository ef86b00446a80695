"""Run the shipper CLI with its wall clock off by OFFSET seconds (a VM booted before NTP).

    python bench/chaos_clock.py 7200 run --once --config shipper.toml

For the chaos harness only: `time.time`, `time.time_ns` and `datetime.now` are shifted before
`shipper` is imported, so the product needs no test hook; monotonic clocks are left alone.
"""

from __future__ import annotations

import datetime as dt
import runpy
import sys
import time


def shift_clock(offset: float) -> None:
    """Make this process's wall clock run `offset` seconds ahead (behind when negative)."""
    real_time, real_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset
    time.time_ns = lambda: real_ns() + int(offset * 1e9)

    class ShiftedDatetime(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> ShiftedDatetime:
            return cls.fromtimestamp(time.time(), tz)

        @classmethod
        def utcnow(cls) -> ShiftedDatetime:
            return cls.fromtimestamp(time.time(), dt.UTC).replace(tzinfo=None)

    dt.datetime = ShiftedDatetime  # type: ignore[misc]


def main() -> None:
    offset, args = float(sys.argv[1]), sys.argv[2:]
    shift_clock(offset)
    sys.argv = ["shipper", *args]
    runpy.run_module("shipper.cli.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
