"""One driver per sweep: a lock file ``<storage>/<name>/.dgl_driver.lock`` held while a driver runs it.

The file holds the holder's host, PID and start time (JSON). A second driver on the same sweep stops
with a one-line error naming the first. A lock left by a driver that died (same host, PID no longer
alive) is stale: it is taken over with a one-line note. A lock of another host is never taken over
(its PID cannot be checked from here): the error says to delete the file once that driver is gone.

Local folders: the file is created with ``O_CREAT | O_EXCL``, atomic on one machine and on NFS v3+.
URIs (s3://, gs://, ...): pyarrow has no create-if-absent, so the lock is read, then written, then read
back to check that this driver's copy won; two drivers starting within the same second may still both
pass (S3 offers no atomic write-if-absent through pyarrow). It still stops the common case, a second
driver started while the first runs.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

from ..errors import ConfigError
from ..storage import storage_fs

LOCK_FILE = ".dgl_driver.lock"


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (signal 0 checks without sending)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # someone else's live process
        return True
    except (OverflowError, ValueError):
        return False
    return True


def is_stale(holder: dict) -> bool:
    """A lock of this host whose PID is dead (a driver killed with SIGKILL, a machine reboot)."""
    return holder.get("host") == socket.gethostname() and not pid_alive(holder.get("pid", -1))


def _busy_error(name: str, holder: dict, where: str) -> ConfigError:
    return ConfigError(f"sweep {name} is being run by pid {holder.get('pid')} on host {holder.get('host')} "
                       f"since {holder.get('since')}; wait for it to end or stop it (one driver per sweep); "
                       f"if that driver is gone, delete {where}")


def _paths(storage: str, name: str):
    fs, root = storage_fs(storage)
    path = f"{root}/{name}/{LOCK_FILE}" if fs is not None else os.path.join(root, name, LOCK_FILE)
    where = f"{storage.rstrip('/')}/{name}/{LOCK_FILE}" if fs is not None else path
    return fs, path, where


def _read_local(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        holder = None
    return holder if isinstance(holder, dict) else {}     # {}: a lock being written, or garbage


def _acquire_local(path: str, name: str, me: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read_local(path)
            if holder is None:
                continue                                    # released meanwhile: try again
            if holder and not is_stale(holder):
                raise _busy_error(name, holder, path)
            if not holder:                                  # unreadable: a driver writing it right now?
                time.sleep(0.5)
                holder = _read_local(path)
                if holder is None:
                    continue
                if holder and not is_stale(holder):
                    raise _busy_error(name, holder, path)
            _note_takeover(name, holder)
            os.remove(path)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(me, f)
        return
    raise ConfigError(f"sweep {name}: could not take the lock {path} (other drivers keep taking it)")


def _read_fs(fs, path: str) -> dict | None:
    import pyarrow.fs as pafs
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        text = f.read().decode("utf-8", "replace")
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _acquire_fs(fs, path: str, where: str, name: str, me: dict) -> None:
    holder = _read_fs(fs, path)
    if holder and not is_stale(holder):
        raise _busy_error(name, holder, where)
    if holder is not None:
        _note_takeover(name, holder)
    fs.create_dir(os.path.dirname(path), recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(json.dumps(me).encode("utf-8"))
    back = _read_fs(fs, path)                 # a driver that wrote after us wins; we stop
    if back and back != me:
        raise _busy_error(name, back, where)


def _note_takeover(name: str, holder: dict) -> None:
    print(f"note: taking over the stale lock of sweep {name} (pid {holder.get('pid')} on host "
          f"{holder.get('host')} since {holder.get('since')} is no longer running)", file=sys.stderr, flush=True)


def acquire(storage: str, name: str) -> dict:
    """Take the sweep's lock (ConfigError naming the holder when another live driver has it).
    Returns what was written (give it to :func:`release`)."""
    fs, path, where = _paths(storage, name)
    me = _holder()
    if fs is None:
        _acquire_local(path, name, me)
    else:
        _acquire_fs(fs, path, where, name, me)
    return me


def release(storage: str, name: str, me: dict) -> None:
    """Remove the lock if it is still this driver's (never another driver's that took over)."""
    fs, path, _ = _paths(storage, name)
    if fs is None:
        if _read_local(path) == me:
            os.remove(path)
        return
    if _read_fs(fs, path) == me:
        fs.delete_file(path)


@contextlib.contextmanager
def sweep_lock(storage: str, name: str):
    """``with sweep_lock(storage, name): ...`` holds the sweep's lock and releases it on every exit
    (return, exception, KeyboardInterrupt). Re-entrant in one process: a nested call on the same sweep
    (the CLI around run_sweep) does nothing."""
    key = (storage, name)
    if key in _HELD:
        yield _HELD[key]
        return
    me = acquire(storage, name)
    _HELD[key] = me
    try:
        yield me
    finally:
        _HELD.pop(key, None)
        release(storage, name, me)


_HELD: dict = {}
