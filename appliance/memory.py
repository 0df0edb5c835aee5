"""glibc malloc settings for a server that decodes large images on many threads (`appliance serve`).

Measured with `appliance bench --soak` (docs/benchmarks.md): under distinct-image load the RSS grew
while Python's own heap (tracemalloc) stayed flat. The growth was glibc's: with its default dynamic
mmap threshold, the first freed multi-megabyte buffer (a decoded frame, a JPEG body) raises the
threshold, so later frames are carved out of the per-thread arenas (up to 8 per core) instead of
being mmapped, and the freed space stays in the arenas, fragmented (mallinfo2: 50-75 % of the arena
bytes free, 3 mmapped blocks). A fixed mmap threshold sends every buffer of MMAP_THRESHOLD or more to
mmap, which gives it back to the kernel when freed. Settings the operator put in the environment
(MALLOC_MMAP_THRESHOLD_, MALLOC_ARENA_MAX, ...) win; on a C library without mallopt (musl) this is a
no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 0  # 0: glibc's default (8 per core); see the soak figures before changing it
ENV_KEYS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_ARENA_MAX")


def tune_malloc() -> bool:
    """Fix the mmap threshold (and cap arenas if ARENA_MAX); False when left as it is."""
    if any(key in os.environ for key in ENV_KEYS):
        return False  # the operator chose
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1)
    if ARENA_MAX:
        done = bool(mallopt(M_ARENA_MAX, ARENA_MAX) == 1) and done
    logger.debug("malloc: mmap threshold %d bytes: %s", MMAP_THRESHOLD, "set" if done else "unchanged")
    return done
