"""Which code, packages and machines produced a sweep's rows.

:func:`collect` is called once by the sweep driver; the dict goes into the Parquet file's metadata
(pandas keeps ``DataFrame.attrs`` there), so every ``results.parquet`` says where its rows came
from, and :func:`read` gets it back (``load_experiment`` puts it in ``frame.attrs["provenance"]``,
``report`` prints it). The trial rows themselves already carry ``host``/``node_id`` per trial.

Fields: ``dgl_ray`` (version), ``git_commit`` and ``git_dirty`` (of the folder the package was
imported from; None outside a git checkout), ``python``, ``torch``, ``ray``, ``numpy``, ``pandas``,
``host`` and ``device`` of the driver, ``nodes`` (host name, CPUs, GPUs and accelerator type of each
alive Ray node, when Ray runs), ``created`` (UTC, ISO 8601).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
from importlib.metadata import version
from pathlib import Path

import pyarrow.parquet as pq

from . import __version__

KEY = "provenance"
ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout dgl_ray runs from; (None, None) outside git."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = _git("status", "--porcelain", "--untracked-files=no")
    return commit, (bool(status) if status is not None else None)


def device_name() -> str:
    """The driver's accelerator (CUDA device name) or its CPU model."""
    try:
        import torch   # here, not at the top: a report that reads provenance should not load torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # torch without a working CUDA runtime
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        return version(module)
    except Exception:
        return None


def ray_nodes() -> list[dict]:
    """Alive Ray nodes (host, CPUs, GPUs, accelerator type); [] when Ray is not running here."""
    try:
        import ray   # here, not at the top: Ray is heavy, and asked only whether it already runs here
        if not ray.is_initialized():
            return []
        out = []
        for n in ray.nodes():
            if not n.get("Alive"):
                continue
            res = n.get("Resources", {})
            acc = sorted(k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:"))
            out.append({"host": n.get("NodeManagerHostname"), "cpus": res.get("CPU", 0),
                        "gpus": res.get("GPU", 0), "accelerator": ",".join(acc) or None})
        return out
    except Exception:
        return []


def collect() -> dict:
    """The provenance of a run started from this process (see the module docstring)."""
    commit, dirty = git_state()
    return {
        "dgl_ray": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "ray": _version("ray"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "host": socket.gethostname(),
        "device": device_name(),
        "nodes": ray_nodes(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def read(path: str | Path) -> list[dict]:
    """Provenance records of the ``*.parquet`` files under ``path`` (or of the file itself), one per
    distinct record, each with the ``file`` it came from (parts of one sweep share one record)."""
    path = Path(path)
    # a sweep folder's Parquet files (and one folder down), or those of the sweeps in a storage
    # folder; the checkpoints inside trial folders are never walked
    files = [path] if path.is_file() else sorted(
        p for pattern in ("*.parquet", "*/*.parquet") for p in path.glob(pattern)
        if not any(s.startswith(".") for s in p.relative_to(path).parts))
    seen, out = set(), []
    for f in files:
        try:
            meta = pq.read_schema(f).metadata or {}
        except Exception:
            continue
        raw = meta.get(b"PANDAS_ATTRS")
        if not raw:
            continue
        try:
            rec = json.loads(raw).get(KEY)
        except ValueError:
            continue
        if not rec:
            continue
        key = json.dumps(rec, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        out.append({**rec, "file": os.fspath(f)})
    return out


def attach(df, record: dict | None = None):
    """Put a provenance record into ``df.attrs`` (written to Parquet metadata by ``to_parquet``)."""
    df.attrs[KEY] = record if record is not None else collect()
    return df


def describe(records: list[dict]) -> list[str]:
    """Markdown bullet lines for a report."""
    lines = []
    for r in records:
        dirty = {True: " (dirty tree)", False: "", None: ""}[r.get("git_dirty")]
        commit = (r.get("git_commit") or "unknown")[:12]
        nodes = r.get("nodes") or []
        where = f"host {r.get('host')}, {r.get('device')}"
        if nodes:
            where += "; Ray nodes: " + ", ".join(
                f"{n.get('host')} ({n.get('cpus'):g} CPU" + (f", {n.get('gpus'):g} GPU {n.get('accelerator') or ''}".rstrip()
                                                          if n.get("gpus") else "") + ")" for n in nodes)
        lines.append(f"- dgl_ray {r.get('dgl_ray')} at git {commit}{dirty}; Python {r.get('python')}, "
                     f"torch {r.get('torch')}, Ray {r.get('ray')}; {where}; written {r.get('created')}"
                     + (f" (`{Path(r['file']).name}`)" if len(records) > 1 and r.get("file") else ""))
    return lines
