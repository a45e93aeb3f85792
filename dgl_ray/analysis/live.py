"""``report --watch N``: rebuild the report of a running sweep every N seconds.

Each refresh is one ordinary ``report`` run (what has finished so far; the missing trials are
counted by the report itself), preceded by a time stamp. It stops by itself once the sweep has
written its final ``results.parquet`` after the watch began (one last refresh shows the end), and on
Ctrl-C.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable


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


def _final_parquets(path: Path) -> dict[Path, float]:
    files = [path] if path.is_file() else list(path.glob("results.parquet")) + list(path.glob("*/results.parquet"))
    return {p: p.stat().st_mtime for p in files if p.exists()}


def watch(report_once: Callable[[list[str]], int], argv: list[str], every: float, path: Path,
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
