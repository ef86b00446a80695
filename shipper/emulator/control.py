"""The `/_emulator/...` control routes, each a thin call into the `Emulator` API."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from shipper.emulator.faults import Fault
from shipper.emulator.query import Order

if TYPE_CHECKING:
    from shipper.emulator.server import Emulator


def _post_events(emulator: Emulator, events: Any) -> object:
    if not isinstance(events, list):
        raise ValueError("expected a JSON array of events")
    emulator.add_events(events)
    return {"added": len(events)}


def _post_late(emulator: Emulator, args: Any) -> object:
    if not isinstance(args, dict) or not {"count", "max_age"} <= set(args) <= _LATE_KEYS:
        raise ValueError('expected {"count": N, "max_age": S} (optional "seed", "now")')
    return emulator.add_late_events(**args)


def _put_order(emulator: Emulator, args: Any) -> None:
    # The setter rejects anything but "desc" and "asc".
    emulator.order = cast(Order, args.get("order") if isinstance(args, dict) else args)


def _put_clock(emulator: Emulator, args: Any) -> None:
    skew = args.get("skew") if isinstance(args, dict) else None
    if not isinstance(skew, int | float) or isinstance(skew, bool):
        raise ValueError('expected {"skew": SECONDS} (added to the Date the emulator sends)')
    emulator.clock_skew = float(skew)


_LATE_KEYS = {"count", "max_age", "seed", "now"}
CONTROL_ROUTES: dict[tuple[str, str], Callable[[Emulator, Any], object]] = {
    ("POST", "/_emulator/events"): _post_events,
    ("POST", "/_emulator/late"): _post_late,
    ("POST", "/_emulator/faults"): lambda emulator, args: emulator.inject(Fault.from_json(args)),
    ("DELETE", "/_emulator/faults"): lambda emulator, _: emulator.clear_faults(),
    ("GET", "/_emulator/stats"): lambda emulator, _: orjson.loads(emulator.stats.to_json()),
    ("PUT", "/_emulator/order"): _put_order,
    ("PUT", "/_emulator/clock"): _put_clock,
}
