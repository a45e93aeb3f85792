"""How a sweep ends when something goes wrong: always the same way, in every phase.

A fault (an exception in the driver: a full disk, Ray failing to start, a Tune error) ends with one
``error:`` line naming the cause and the log file that holds the full traceback (``dgl_driver.log`` in the
sweep folder, or in the temporary folder when that cannot be written), the results read so far written
to ``results.parquet`` where the disk allows, the exact ``--resume`` command, and exit code 1. SIGINT or
SIGTERM outside the trials (Ray starting, the summary) ends at once with exit code 128 + signal and the
``--resume`` command; during the trials ``runner._StopOnSignal`` stops them at their checkpoints, and if
the Ray head died with the signal (a scheduler's SIGTERM to the whole process group) or the stop takes
longer than ``STOP_GRACE_S``, it ends the same way without waiting for the dead head.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback

from ..rows import SETTLED_STATUSES, trial_id_of
from ..storage import storage_fs
from .results import collect

DRIVER_LOG = "dgl_driver.log"
# Longest wait, after SIGINT/SIGTERM, for the trials to stop at their checkpoints (Tune's own stop
# takes a few seconds); a dead Ray head is not waited for at all (Ray would wait 60 s for it).
STOP_GRACE_S = 30.0
# Longest wait for ray.shutdown() at a faulty end (a dead head can make it hang).
SHUTDOWN_GRACE_S = 10.0
# Longest wait for results.parquet when ending without Ray (reading the trial folders from disk).
SAVE_GRACE_S = 60.0
# A local storage with less free space than this counts as full in the ending's cause (Tune and the
# trials report a full disk as many other errors: a truncated pickle, a failed sync, a failed checkpoint).
FULL_BELOW_BYTES = 1 << 20

# What the driver is doing, for the one-line ending: set by runner.init_ray and runner._StopOnSignal.
PHASES = ("starting Ray", "running the trials", "writing the results")
phase = "starting Ray"
current_opts = None          # the running sweep's options (cli.main sets them), for the watchdog's ending


def set_phase(name: str) -> None:
    global phase
    phase = name


class Interrupted(BaseException):
    """SIGINT/SIGTERM outside Tune's fit (a BaseException, as KeyboardInterrupt: no handler swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def signals_end_the_sweep():
    """SIGINT and SIGTERM raise Interrupted (Tune's fit installs its own stop in between)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise Interrupted(signum)
    old = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextlib.contextmanager
def signals_held():
    """Around ray.init: SIGINT/SIGTERM are recorded, not raised (ray.init would swallow an exception raised
    inside it, and it installs SIGTERM handlers that exit with another code); the handlers from before are
    put back, then a recorded signal raises Interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got = []
    held = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.signal(sig, lambda signum, frame: got.append(signum)) for sig in held}
    set_handler = signal.signal

    def keep_recording(sig, handler):
        # ray.init installs a SIGTERM handler that calls sys.exit; raised inside a logging lock's release
        # it was "ignored" and the signal lost (seen under load): ours stay until ray.init returns
        return signal.getsignal(sig) if sig in held else set_handler(sig, handler)
    signal.signal = keep_recording
    try:
        yield
    except SystemExit:              # a SIGTERM handler of Ray's ran anyway (sys.exit): ours to end by
        got.append(signal.SIGTERM)
    finally:
        signal.signal = set_handler
        for sig, h in old.items():
            signal.signal(sig, h)
    if got:
        raise Interrupted(got[0])


def resume_command(opts) -> str:
    """The exact command that continues this sweep (its own arguments plus --resume; an extension's
    --extend becomes --resume, which continues every part)."""
    argv = [a for a in getattr(opts, "argv", None) or [] if a != "--extend"]
    if "--resume" not in argv:
        argv.append("--resume")
    cmd = shlex.join([sys.executable, "-m", f"dgl_ray.sweeps.{opts.family}", *argv])
    return f"cd {shlex.quote(getattr(opts, 'cwd', None) or os.getcwd())} && {cmd}"



# ---- where the traceback goes ----------------------------------------------------------------------

def log_candidates(opts) -> list[str]:
    """The driver log's places, best first: the sweep folder (local storage), then the temporary folder."""
    out = []
    try:
        fs, root = storage_fs(opts.storage)
    except Exception:
        fs, root = object(), None
    if fs is None:
        out.append(os.path.join(root, opts.name, DRIVER_LOG))
    out.append(os.path.join(tempfile.gettempdir(), "dgl_ray", opts.name, DRIVER_LOG))
    return out


def write_log(opts, text: str) -> str | None:
    """Append ``text`` to the first driver log that can be written; its path, or None."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for path in log_candidates(opts):
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "a", encoding="utf-8") as f:
                f.write(f"--- {stamp} {' '.join(getattr(opts, 'argv', []) or [])}\n{text}\n")
            return path
        except OSError:
            continue
    return None


def cause_of(exc: BaseException) -> str:
    """The fault in one line: the first OSError of the exception chain (a full disk is usually wrapped
    by Tune), else the innermost exception."""
    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    root = next((e for e in chain if isinstance(e, OSError)), chain[-1])
    if isinstance(root, OSError) and root.errno == errno.ENOSPC:
        where = f" ({root.filename})" if root.filename else ""
        return f"no space left on the device{where}"
    text = str(root).strip().splitlines()
    return f"{type(root).__name__}: {text[0] if text else ''}".rstrip(": ")


class LongRecordsToLog(logging.Filter):
    """Ray's and Tune's multi-line log records (tracebacks of failed trials, of failed syncs: hundreds of
    lines on a full disk) go whole to the driver log; the terminal gets their first line and the log's
    path. One-line records pass unchanged."""

    def __init__(self, opts):
        super().__init__()
        self.opts = opts

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "\n" not in text.strip() and not record.exc_info:
            return True
        full = text + ("\n" + "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else "")
        log = write_log(self.opts, f"{record.levelname} {record.name}: {full}")
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        record.msg, record.args, record.exc_info, record.exc_text = (
            f"{first.rstrip(': ')} (details: {log or 'no log could be written'})", None, None, None)
        return True


@contextlib.contextmanager
def compact_ray_logs(opts):
    """LongRecordsToLog on the handlers of Ray's logger (Tune's loggers propagate to it) for a sweep."""
    import ray  # noqa: F401  (sets up the "ray" logger's handler)
    handlers = list(logging.getLogger("ray").handlers)
    f = LongRecordsToLog(opts)
    for h in handlers:
        h.addFilter(f)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(f)


def disk_full_note(opts) -> str:
    """'the disk of --storage is full (N bytes free): ' when it is (local storage), else ''."""
    try:
        fs, root = storage_fs(opts.storage)
        free = shutil.disk_usage(root).free if fs is None else None
    except Exception:
        return ""
    if free is None or free >= FULL_BELOW_BYTES:
        return ""
    return f"the disk of --storage {opts.storage} is full ({free:,} bytes free): "


# ---- the endings -----------------------------------------------------------------------------------

def end_by_signal(opts, signum: int) -> int:
    name = signal.Signals(signum).name
    print(f"\n{name} while {phase}: the sweep stopped (finished trials and checkpoints are kept)",
          file=sys.stderr, flush=True)
    _shutdown_ray()
    _print_resume(opts)
    return 128 + signum


def end_by_fault(opts, exc: BaseException) -> int:
    log = write_log(opts, f"the sweep failed while {phase}\n"
                          + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    where = f"full traceback: {log}" if log else "no log could be written: the traceback follows"
    print(f"error: the sweep failed while {phase}: {disk_full_note(opts)}{cause_of(exc)} ({where})",
          file=sys.stderr, flush=True)
    if log is None:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    if phase != "starting Ray":
        save_results(opts)
    _shutdown_ray()
    _print_resume(opts)
    return 1


def end_now(opts, signum: int, why: str) -> None:
    """Run from a watchdog thread while Tune's stop cannot finish (its Ray head is gone): say why, write
    what is on disk, print the --resume command and exit with 128 + signal without waiting for Ray."""
    name = signal.Signals(signum).name
    print(f"\n{name}: {why}; ending without waiting for Ray (finished trials and checkpoints are kept)",
          file=sys.stderr, flush=True)
    _shutdown_ray()         # disconnected, nothing below asks the dead head (the Parquet's provenance would)
    saver = threading.Thread(target=save_results, args=(opts,), daemon=True)
    saver.start()
    saver.join(SAVE_GRACE_S)
    if saver.is_alive():
        print(f"results.parquet not written within {SAVE_GRACE_S:g} s; --resume writes it", file=sys.stderr)
    _print_resume(opts)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(128 + signum)


def save_results(opts) -> None:
    """``results.parquet`` from what is on disk (a fault's ending: unfinished runs are marked so)."""
    try:
        df, where = collect(opts.storage, opts.name, None)
    except Exception as e:        # the disk that failed the sweep may fail this too: say so, go on
        fs, root = storage_fs(opts.storage)
        if fs is None:
            with contextlib.suppress(OSError):      # no truncated Parquet left for `report` to trip on
                os.remove(os.path.join(root, opts.name, "results.parquet"))
        print(f"results.parquet not written ({cause_of(e)}); --resume writes it", file=sys.stderr, flush=True)
        return
    runs = df.groupby("run")["run_status"].last() if len(df) else []
    finished = int(sum(s in SETTLED_STATUSES for s in runs))
    print(f"results so far: {where} ({finished} trials finished, {len(runs) - finished} not; {len(df)} rows)",
          flush=True)


def _print_resume(opts) -> None:
    print(f"continue it with:\n  {resume_command(opts)}", flush=True)


def _shutdown_ray() -> None:
    """ray.shutdown(), bounded: a head killed with the driver's process group can make it hang."""
    import ray
    if not ray.is_initialized():
        return
    t = threading.Thread(target=ray.shutdown, daemon=True)
    t.start()
    t.join(SHUTDOWN_GRACE_S)


# ---- the watchdog of a stop --------------------------------------------------------------------------

def head_is_dead() -> bool:
    """A process of the local Ray head this driver started (GCS, raylet, ...) has exited."""
    try:
        from ray._private import worker
        node = worker._global_node
        return bool(node is not None and node.dead_processes())
    except Exception:
        return False


def watch_stop(opts, signum: int, stopped: threading.Event) -> threading.Thread:
    """A daemon thread that ends the sweep (``end_now``) when the Ray head dies or the stop outlasts
    STOP_GRACE_S; it does nothing once ``stopped`` is set (Tune's fit returned)."""
    def watch():
        deadline = time.monotonic() + STOP_GRACE_S
        while not stopped.wait(0.25):
            if head_is_dead():
                end_now(opts, signum, "the Ray head stopped with the signal (its process group was signalled)")
            if time.monotonic() > deadline:
                end_now(opts, signum, f"the trials did not stop within {STOP_GRACE_S:g} s")
    t = threading.Thread(target=watch, name="dgl-stop-watchdog", daemon=True)
    t.start()
    return t


# ---- trials that died before their first report ---------------------------------------------------------

def errored_without_rows(results, df) -> int:
    """(λ, seed) trials of the Tune trials that errored before their first report (a trial process killed
    by the OS, e.g. for memory): they have no rows, and they are errored, not "never started", as the
    progress line counted them."""
    seen = set()
    for col in ("tune_trial", "run"):
        if col in df:
            seen |= set(df[col].dropna().astype(str))
    lost = 0
    for r in results:
        if r.error is None:
            continue
        tid = (r.metrics or {}).get("trial_id") or (trial_id_of(r.path) if r.path else None)
        if tid and tid not in seen:
            lost += len((r.config or _params(r.path)).get("group", [None]))
    return lost


def _params(trial_dir: str | None) -> dict:
    """A trial folder's params.json (its config, written when it started), or {}."""
    import json
    try:
        with open(os.path.join(trial_dir, "params.json"), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, TypeError, ValueError):
        return {}
