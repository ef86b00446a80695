"""Keep glibc's allocator from growing an arena per fetch thread.

glibc gives each thread that meets contention an allocator arena of its own, up to eight per
core, and memory freed into one arena is not reused by another. Event bytes are allocated by
the fetch threads and freed by the sink threads, so a latency-bound backfill (a dozen threads
busy at once) spreads them over many arenas: a quarter more peak RSS for nothing. Two arenas
keep contention low for threads that mostly wait on the network.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_ARENA_MAX = -8  # from glibc's <malloc.h>
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's arenas at `arenas`, unless MALLOC_ARENA_MAX already says how many (the
    operator's word wins) or the C library is not glibc; whether the cap was set."""
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
