"""Process-wide settings for a process that is the daemon, and nothing else (`cyberdesk-runner run` started from
the command line; not a program that calls the CLI in-process, such as the tests).

- **Malloc arenas.** glibc's malloc gives threads that allocate at the same time arenas of their own (up to 8 per
  core) and rarely hands their free memory back. The daemon's store work runs on a few threads beside the event
  loop, so each arena keeps its own high-water mark of freed memory: about 20 MB with 10,000 runs in flight
  (bench/runner_bench.py: peak 196 MB by default, 177 MB with two arenas). Under the GIL those threads seldom
  allocate at once, so two arenas cost no measurable speed (one cost about 5% more CPU per run).
- **Big blocks.** glibc serves blocks of 128 KiB and more with their own mmap, given back when freed, but each
  time one is freed it raises that threshold to the block's size (up to 32 MB): after one 5 MB answer (a
  10,000-desktop pool's members) and its decoded text, blocks of that size come from the heap and leave it grown
  by as much. The threshold is fixed at 128 KiB instead (which turns that adjustment off): 10,000 runs in flight
  on 10,000 desktops peaked about 5 MB lower (bench/runner_bench.py). Few blocks that big are made per second.
- **Garbage collector.** Every full collection walks every object of every imported library (a million here);
  they are frozen out of it once imports are done, and the youngest generation is collected every 10,000
  allocations instead of 700. Measured on a 20,000-run job: collector time 2.2 s -> 0.65 s, daemon CPU -6%.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys

#: glibc's `mallopt` parameter numbers of M_ARENA_MAX and M_MMAP_THRESHOLD (malloc.h).
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
ARENAS = 2
#: Bytes from which a block gets an mmap of its own (glibc's default, kept fixed: see above).
MMAP_THRESHOLD = 128 * 1024
#: Allocations between collections of the youngest generation (CPython's default: 700).
YOUNG_THRESHOLD = 10_000


def tune_daemon_process() -> None:
    """Call once, before the daemon starts its threads and after its imports."""
    limit_malloc_arenas()
    fix_mmap_threshold()
    quiet_garbage_collector()


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas, unless `MALLOC_ARENA_MAX` already says how many; True if the cap applies.

    Not glibc (macOS, musl, Windows): nothing to do, False.
    """
    return _mallopt("MALLOC_ARENA_MAX", "glibc.malloc.arena_max", _M_ARENA_MAX, arenas)


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold, unless the operator set it (`MALLOC_MMAP_THRESHOLD_`, or
    `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES`); True if it applies. Not glibc: nothing to do, False."""
    return _mallopt("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold", _M_MMAP_THRESHOLD, threshold)


def _mallopt(variable: str, tunable: str, param: int, value: int) -> bool:
    if os.environ.get(variable) or tunable in os.environ.get("GLIBC_TUNABLES", ""):
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
    return bool(mallopt(param, value))


def quiet_garbage_collector(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Move everything alive now (modules, classes, functions) out of the collector's reach, and collect the
    youngest generation less often. Objects made later are collected as usual."""
    gc.unfreeze()  # what the console script froze after its imports (cli.main): its garbage is collected too
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)
