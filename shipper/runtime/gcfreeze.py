"""Take what start-up built out of the cyclic garbage collector's way.

Imports and the config leave about 40,000 container objects (modules, classes, functions,
pydantic's schemas) that live as long as the process. Every full collection walks them all
again, and so does the interpreter's teardown at exit: in a 200,000-event backfill that was a
tenth of the CPU, and `run --once` spent 60-90 ms exiting. `gc.freeze()` moves them to a
permanent generation that collections skip; reference counting still frees whatever of them is
dropped. Start-up leaves no cyclic garbage behind (a full collection right then finds none and
costs 16 ms), so none is frozen for good.
"""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Freeze every object the collector tracks now."""
    gc.freeze()
