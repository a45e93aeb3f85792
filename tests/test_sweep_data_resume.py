"""Sweeps written by the December 2026 release resume with the current code (issue 18, item 5).

``tests/data/sweeps-2026-12/`` holds three interrupted digits sweeps written by that release, one per
searcher kind (its README says how). The slow test resumes a copy of each: every planned trial
finishes, no finished trial runs again (rows per run: one per epoch, the stored ones unchanged), exit 0.
"""
import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data" / "sweeps-2026-12"
ROOT = Path(__file__).resolve().parents[1]
SHARED = ["--num-cpus", "1", "--max-concurrent", "1", "--checkpoint-every", "1", "--progress-interval", "30",
          "--group-size", "2", "--data-root", "/tmp/dgl-ray-data"]
# name -> (family and its options, epochs per trial, trials of the whole plan)
SWEEPS = {
    "grid": (["coexistence", "--lambdas", "0.3,0.6", "--n", "3", "--epochs", "3"], 3, 6),
    "adaptive": (["coexistence", "--adaptive", "6", "--adaptive-n0", "1", "--lambdas", "0.3,0.6", "--epochs", "2"],
                 2, 6),
    # both preparation runs pass (--trap-accept 0): 2 preparations + 2 x 2 follow-ups, one epoch each
    "chained": (["trap", "--n", "2", "--trap-epochs", "1", "--intervention-epochs", "1", "--intervention-lambdas",
                 "0.6,0.0", "--lr-multipliers", "1", "--trap-accept", "0"], 1, 6),
}
# A chained plan's trial configs hold its preparation checkpoints' absolute paths (in the fingerprint too):
# it resumes only at the storage it was written with.
CHAINED_STORAGE = Path("/tmp/dgl-ray-testdata/sweeps-2026-12")


def _resume(storage: Path, name: str) -> subprocess.CompletedProcess:
    family, *args = SWEEPS[name][0]
    cmd = [sys.executable, "-m", f"dgl_ray.sweeps.{family}", *args, "--name", name, "--storage", str(storage),
           *SHARED, "--resume"]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)


def _rows_per_run(folder: Path) -> pd.Series:
    df = pd.read_parquet(folder / "results.parquet")
    assert not df.duplicated(["run", "epoch"]).any(), "an epoch of a run was reported twice"
    return df.groupby("run")["epoch"].count()


@pytest.mark.slow          # ≈ 15-25 s per sweep (a Ray start each)
@pytest.mark.parametrize("name", list(SWEEPS))
def test_stored_sweep_resumes_to_the_end(tmp_path, name):
    before = _rows_per_run(DATA / name)
    if name == "chained":
        CHAINED_STORAGE.mkdir(parents=True, exist_ok=True)
        lock = open(CHAINED_STORAGE.parent / ".lock", "w")
        fcntl.flock(lock, fcntl.LOCK_EX)              # one test run at a time uses the fixed path
        storage = CHAINED_STORAGE
        shutil.rmtree(storage / name, ignore_errors=True)
    else:
        lock, storage = None, tmp_path
    try:
        shutil.copytree(DATA / name, storage / name)
        r = _resume(storage, name)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "(resumed)" in r.stdout
        after = _rows_per_run(storage / name)
    finally:
        if lock is not None:
            shutil.rmtree(storage / name, ignore_errors=True)
            lock.close()
    epochs, n_trials = SWEEPS[name][1:]
    assert len(after) == n_trials, after
    assert (after == epochs).all(), after              # every trial finished, none ran twice
    assert before.index.isin(after.index).all()        # the stored runs are kept, not run again
    assert (after[before.index] == before).all()
