"""`shipper run` caps glibc's malloc arenas, which otherwise grow one per fetch thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shipper.runtime import malloc

ROOT = Path(__file__).resolve().parents[2]

# Starts eight threads that allocate, then counts the heaps (arenas) glibc reports.
COUNT_ARENAS = """
import ctypes, os, sys, tempfile, threading
from shipper.runtime.malloc import limit_arenas
if sys.argv[1] == "capped":
    assert limit_arenas()
# All eight alive at once: an arena freed by a thread that already ended would be reused.
together = threading.Barrier(8)
def work():
    held = [bytes(700) for _ in range(1000)]
    together.wait()
    held += [bytes(700) for _ in range(1000)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = (ctypes.c_char_p, ctypes.c_char_p)
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
path = os.path.join(tempfile.mkdtemp(), "info.xml")
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print(open(path).read().count("<heap nr="))
"""

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not os.confstr("CS_GNU_LIBC_VERSION"),
    reason="malloc arenas are glibc's",
)


def arenas(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    result = subprocess.run(
        [sys.executable, "-c", COUNT_ARENAS, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(result.stdout)


@glibc
def test_threads_share_two_arenas_once_capped() -> None:
    """Without the cap eight threads get arenas of their own; with it, they share two."""
    assert arenas("uncapped") > malloc.ARENAS
    assert arenas("capped") <= malloc.ARENAS


def test_the_operators_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """MALLOC_ARENA_MAX set in the environment is glibc's to apply: the shipper leaves it alone."""
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert malloc.limit_arenas() is False
