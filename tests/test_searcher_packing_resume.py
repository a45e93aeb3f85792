"""A packed chained sweep (trap: preparation populations, then children packed as they become ready)
interrupted with SIGINT while populations train, then resumed: every plan trial ends exactly once, none
lost or repeated, each child from its own parent's checkpoint, and the exit codes say so (slow: ≈ 60 s)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests._sweep_helpers import ROOT, finals, interrupt_sweep, parquet


def _cmd(storage):
    return [sys.executable, "-m", "dgl_ray.sweeps.trap", "--trap-epochs", "4", "--trap-accept", "0",
            "--intervention-lambdas", "0.0,0.2", "--lr-multipliers", "0.1,1", "--intervention-epochs", "4",
            "--n", "3", "--group-size", "3", "--storage", str(storage), "--name", "chain", "--num-cpus", "2",
            "--checkpoint-every", "1", "--progress-interval", "2", "--max-failures", "0"]


def _children_training(exp: Path) -> bool:
    """A children's population has reported an epoch (it has a checkpoint) and the sweep goes on."""
    n_with_rows = sum(1 for rj in exp.glob("*/result.json") if rj.stat().st_size > 0)
    return n_with_rows >= 2          # the preparation population and at least one of children


@pytest.mark.slow
def test_packed_chained_sweep_interrupted_and_resumed(tmp_path):
    rc, out = interrupt_sweep(_cmd(tmp_path), lambda: _children_training(tmp_path / "chain"), signal.SIGINT)
    assert rc == 130, out[-3000:]
    first = parquet(tmp_path, "chain")
    assert (first["run_status"] == "unfinished").any(), "no population was running at the signal"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(_cmd(tmp_path) + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    df = parquet(tmp_path, "chain")
    end = finals(df)
    # 3 preparation trials + 3 x 4 children, each plan trial one run that completed, none twice
    assert len(end) == 15 and end["plan_id"].nunique() == 15 and (end["run_status"] == "completed").all()
    assert (end["epoch"] == 4).all()
    assert df.groupby(["run", "epoch"]).size().max() == 1                 # no epoch of a run reported twice
    preps, kids = end[end["role"] == "prep"], end[end["role"] == "child"]
    assert len(preps) == 3 and len(kids) == 12 and (kids["group_size"] == 3).all()
    parent_seed = dict(zip(preps["plan_id"], preps["seed"]))
    assert (kids["parent"].map(parent_seed) == kids["seed"]).all()       # each child from its own parent
    assert "15 trials finished, 0 unfinished, 0 errored" in r.stdout
