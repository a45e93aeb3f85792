"""CPU allocator setting for training on the host: keep freed activation buffers for reuse.

A packed population allocates and frees the same activation sizes every step (1 MB each for the digits
TinyCNN at G = 16). glibc serves blocks over its mmap threshold with fresh mmaps and gives freed heap
tops back to the kernel, so every step paid ~150 page faults of zero-filling (measured: 0.33 ms of
system time per forward+backward, 8% of the step, and 12% of an epoch's CPU time). Raising the mmap
and trim thresholds makes glibc keep and reuse those blocks: the same arithmetic, fewer page faults.
The cost is memory the process keeps after a peak, at most ``TRIM_BYTES`` beyond what it uses.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3          # glibc's mallopt parameter numbers (malloc.h)
MMAP_BYTES = 32 * 1024 * 1024                          # glibc's maximum: blocks below it come from the heap
# free heap kept before it is handed back: a digits population of 25 frees and reallocates ~40 MB a step
# (32 MB kept: 76 page faults a step, 64 MB: 3); each process keeps at most this much beyond its use
# (256 MB had cost the digits S1 sweep ~550 MB of peak RSS over its Ray workers)
TRIM_BYTES = 64 * 1024 * 1024

_done = False


def keep_freed_memory() -> bool:
    """Set the thresholds once per process (glibc on Linux only; elsewhere a no-op). True if set."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_BYTES) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) == 1
    except (OSError, AttributeError):      # musl or another libc: keep its defaults
        return False
    _done = ok
    return ok
