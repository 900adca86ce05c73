"""Process-wide memory settings of the daemon.

glibc's malloc gives threads that allocate at the same time arenas of their own (up to 8 per core) and rarely
hands their free memory back. The daemon's store work runs on a few threads beside the event loop, so every
arena ends up holding its own high-water mark of freed memory: about 20 MB of resident memory with 10,000 runs
in flight (bench/runner_bench.py: peak 196 MB by default, 177 MB with two arenas). Under the GIL those threads
seldom allocate at once, so two arenas cost no measurable speed; one arena cost about 5% more CPU per run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc's `mallopt` parameter number of M_ARENA_MAX (malloc.h).
_M_ARENA_MAX = -8
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, unless `MALLOC_ARENA_MAX` already says how many; True if the cap applies.

    Call it before the process starts threads. Not glibc (macOS, musl, Windows): nothing to do, False.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False  # the operator's setting, already applied by glibc at startup
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl has no mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
