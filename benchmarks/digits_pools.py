"""The digits pools of the time-to-answer benchmark: real digits runs with their whole trajectories.

Plain coexistence sweeps on the digits default (TinyCNN, 30 epochs, LR 0.1 constant, symmetric noise, one
row per run per epoch with its test error). Two pools train the digits branch classifier
(``python -m dgl_ray.early fit`` reads every Parquet in ``tests/data/digits-pools``) and are replayed:

- ``s1``:  λ 0.36:0.56:0.02 (11 levels) × 50 seeds (0-49) at η 0.4 = 550 runs;
- ``eta``: η 0.2, 0.3, 0.4, 0.5, 0.6 × λ 0.20:0.70:0.02 (26 levels) × 12 seeds (0-11) = 1,560 runs.

Two more are replayed only (``tests/data/digits-replay``, seeds no classifier saw): λ at 0.01 steps across
the coexistence band, so that a replayed adaptive design is not held to the grid's levels and 50 runs a
level (live, λ is continuous and a level never runs out):

- ``s1dense``:  λ 0.37:0.53:0.01 (17 levels) × 150 seeds (70-219) at η 0.4 = 2,550 runs;
- ``etadense``: η 0.2 … 0.6 × λ 0.36:0.53:0.01 (18 levels) × 30 seeds (220-249) = 2,700 runs.

    python -m benchmarks.digits_pools --storage /tmp/pools --run      # the sweeps (about 35 min on 2 cores)
    python -m benchmarks.digits_pools --storage /tmp/pools --compact tests/data

Without ``--run`` or ``--compact`` it prints the sweep commands (the pools in ``tests/data`` were made by
them on 2026-12-06 and 2026-12-07; ``--pools`` picks some); ``--run`` runs them; ``--compact DATA`` writes
one small Parquet per pool, ``DATA/<folder>/<pool>.parquet`` (:data:`FOLDER`): the columns of
:data:`COLUMNS` only, errors and learning rates as float32 (a digits test error is a multiple of 1/360, far
above float32's resolution), and in the frame's ``attrs`` the sweep command and the pool's measured
seconds per trial-epoch on one CPU (the sum over its Tune trials, each a packed population on one CPU, of
their training time / the pool's trial-epochs: what the benchmark's replayed wall times use).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dgl_ray.tidy import load_experiment

POOLS = {
    "s1": ["--lambdas", "0.36:0.56:0.02", "--n", "50"],
    "eta": ["--etas", "0.2,0.3,0.4,0.5,0.6", "--lambdas", "0.20:0.70:0.02", "--n", "12"],
    "s1dense": ["--lambdas", "0.37:0.53:0.01", "--seeds", "70:219:1"],
    "etadense": ["--etas", "0.2,0.3,0.4,0.5,0.6", "--lambdas", "0.36:0.53:0.01", "--seeds", "220:249:1"],
}
# where each pool's compact Parquet goes under tests/data: the classifier's training pools, or replay only
FOLDER = {"s1": "digits-pools", "eta": "digits-pools", "s1dense": "digits-replay", "etadense": "digits-replay"}
COLUMNS = ["run", "lambda", "eta", "width", "seed", "epoch", "test_error", "lr", "status"]
FLOAT32 = ["test_error", "lr"]


def sweep_command(name: str, storage: str) -> list[str]:
    return [sys.executable, "-m", "dgl_ray.sweeps.coexistence", *POOLS[name], "--storage", storage,
            "--name", name, "--progress-interval", "60"]


def run(storage: str, names) -> int:
    env = dict(os.environ, OMP_NUM_THREADS="1")   # two torch processes on 2 cores: one thread each
    for name in names:
        cmd = sweep_command(name, storage)
        print(" ".join(cmd), flush=True)
        rc = subprocess.run(cmd, env=env).returncode
        if rc != 0:
            return rc
    return 0


def compact(df: pd.DataFrame, command: str = "") -> pd.DataFrame:
    """The pool's rows with :data:`COLUMNS` only, sorted by run and epoch; runs without a final
    (completed or diverged) last row are left out: an unfinished run is no pool member."""
    ended = df.sort_values("epoch").groupby("run", observed=True)["status"].last().astype(str)
    keep = ended[ended.isin(["completed", "diverged"])].index
    # one Tune trial (one CPU) trains a population; its last time_total_s is that population's time
    seconds = float(df.groupby("tune_trial", observed=True)["time_total_s"].max().sum())
    out = df[df["run"].isin(keep)][COLUMNS].copy()
    out["epoch"] = out["epoch"].astype("int16")
    out["seed"] = out["seed"].astype("int32")
    out["run"] = out["run"].astype("category")
    out["status"] = out["status"].astype(str).astype("category")
    for c in FLOAT32:
        out[c] = out[c].astype("float32")
    for c in ("lambda", "eta", "width"):
        out[c] = out[c].astype(float).round(6)
    out = out.sort_values(["run", "epoch"]).reset_index(drop=True)
    trial_epochs = len(out)
    out.attrs = {"command": command,
                 "seconds_per_trial_epoch": seconds / trial_epochs if trial_epochs and np.isfinite(seconds) else None}
    return out


def write_compact(src: str, data: str, names) -> int:
    for name in names:
        folder = Path(src) / name
        if not (folder / "results.parquet").exists():
            print(f"{folder}: no results.parquet yet, skipped")
            continue
        df = load_experiment(str(folder))
        command = " ".join(["python -m dgl_ray.sweeps.coexistence", *POOLS[name]])
        c = compact(df, command)
        path = Path(data) / FOLDER[name] / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        c.to_parquet(path, index=False, compression="zstd")
        print(f"{path}: {c['run'].nunique()} runs, {len(c)} rows, {path.stat().st_size / 1e3:.0f} kB")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--storage", default="results/pools", help="the folder that holds (or receives) one folder per pool")
    ap.add_argument("--pools", default=",".join(POOLS), help=f"which pools (comma-separated of {', '.join(POOLS)})")
    ap.add_argument("--run", action="store_true", help="run the pool sweeps into --storage")
    ap.add_argument("--compact", metavar="DATA", help="write DATA/<folder>/<pool>.parquet from --storage")
    a = ap.parse_args(argv)
    names = [n for n in a.pools.split(",") if n]
    bad = [n for n in names if n not in POOLS]
    if bad or not names:
        print(f"error: --pools {a.pools!r}: allowed: comma-separated of {', '.join(POOLS)}", file=sys.stderr)
        return 2
    if a.run:
        rc = run(a.storage, names)
        if rc:
            return rc
    if a.compact:
        return write_compact(a.storage, a.compact, names)
    if not a.run:
        for name in names:
            print(" ".join(sweep_command(name, a.storage)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
