"""``report --watch N``: rebuild the report of a running sweep every N seconds.

Each refresh is one ordinary ``report`` run (what has finished so far; the missing trials are
counted by the report itself), preceded by a time stamp. It stops by itself once the sweep has
written its final ``results.parquet`` after the watch began (one last refresh shows the end), and on
Ctrl-C.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from ..storage import Location


def strip_watch(argv: list[str]) -> list[str]:
    """``argv`` without ``--watch N`` / ``--watch=N``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--watch":
            skip = True
            continue
        if a.startswith("--watch="):
            continue
        out.append(a)
    return out


def _final_parquets(path) -> dict[str, float]:
    """The results.parquet files of the sweep (or of the storage folder's sweeps) and their mtimes: a local
    path or any URI pyarrow reads (one listing per folder)."""
    loc = Location.of(path)
    if loc.is_file():
        return {str(loc): loc.mtime()}
    folders = [loc, *(c for c in loc.iterdir() if c.is_dir() and not c.name.startswith("."))]
    return {str(f): f.mtime() for d in folders for f in d.iterdir()
            if f.name == "results.parquet" and f.is_file()}


def watch(report_once: Callable[[list[str]], int], argv: list[str], every: float, path,
          max_refreshes: int | None = None, sleep=time.sleep) -> int:
    """Call ``report_once(argv)`` every ``every`` seconds until the sweep at ``path`` ends (or Ctrl-C,
    or ``max_refreshes``). Returns the last refresh's exit code."""
    before = _final_parquets(path)
    rc, n = 0, 0
    try:
        while True:
            n += 1
            stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
            print(f"\n=== report of {path} at {stamp} (refresh {n}, every {every:g}s; Ctrl-C stops) ===",
                  flush=True)
            rc = report_once(argv)
            now = _final_parquets(path)
            if any(p not in before or m > before[p] for p, m in now.items()):
                print("the sweep wrote its final results: watch ends", flush=True)
                return rc
            if max_refreshes is not None and n >= max_refreshes:
                return rc
            sleep(every)
    except KeyboardInterrupt:
        print("\nwatch stopped", flush=True)
        return rc
