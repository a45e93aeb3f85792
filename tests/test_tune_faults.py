"""Faults: a trial that raises is retried from its last checkpoint; a driver killed with SIGKILL and
started again with --resume finishes without losing or repeating a finished trial."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dgl_ray.rows import result_rows
from tests._sweep_helpers import finals, parquet, run_family

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("group_size", [1, 2])
def test_trial_that_raises_is_retried_from_checkpoint(tmp_path, group_size):
    import ray
    from dgl_ray.tune.runner import init_ray
    init_ray(None, num_cpus=2)
    try:
        rc = run_family("coexistence", tmp_path, "--lambdas", "0.3", "--n", "2", "--epochs", "4",
                        "--checkpoint-every", "1", "--fail-at-epoch", "2", "--max-failures", "1",
                        "--progress-interval", "30", "--group-size", str(group_size))
    finally:
        ray.shutdown()
    assert rc == 0
    df = parquet(tmp_path, "coexistence")
    assert df["run"].nunique() == 2
    for _, g in df.groupby("run"):
        assert sorted(g["epoch"]) == [1, 2, 3, 4]                  # every epoch once, none lost
        assert g.sort_values("epoch")["status"].iloc[-1] == "completed"
    # each Tune trial (one per run, or one holding both runs) failed once (Tune keeps the error)
    # and resumed from its epoch-2 checkpoint
    errs = list((tmp_path / "coexistence").glob("*/error.txt"))
    assert len(errs) == (2 if group_size == 1 else 1) and "InjectedFailure" in errs[0].read_text()
    # the resumed part ran in the same trial: wall_time continues from the checkpoint's
    assert (df.sort_values(["run", "epoch"]).groupby("run")["wall_time"].diff().dropna() > 0).all()


def _completed_runs(exp: Path) -> set:
    """(run, λ, seed) of every row with status completed in the trial folders' result.json."""
    done = set()
    for rj in exp.glob("*/result.json"):
        for line in rj.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            for m in result_rows(r):        # a grouped trial reports an epoch's rows as one result
                if m.get("status") == "completed":
                    done.add((m.get("run", r["trial_id"]), round(m["lambda"], 6), m["seed"]))
    return done


def _cmd(storage, extra=(), n=6):
    return [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", "0.3,0.6", "--n", str(n),
            "--epochs", "12", "--storage", str(storage), "--name", "killme", "--num-cpus", "2",
            "--checkpoint-every", "1", "--progress-interval", "2", *extra]


@pytest.mark.parametrize("group_size", [pytest.param(1, marks=pytest.mark.slow),   # ≈ 60-75 s; the packed
                                        2])                                          # case runs by default
def test_sigkill_driver_then_resume(tmp_path, group_size):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    exp = tmp_path / "killme"
    log = open(tmp_path / "first.log", "w")
    g = ["--group-size", str(group_size)]
    # enough trials that the driver has recorded some, but not all, when it is killed (the driver
    # writes result.json lines in bursts on an idle machine: a 12-trial sweep can show all at once)
    n = 20 if group_size == 1 else 24
    total = 2 * n
    p = subprocess.Popen(_cmd(tmp_path, g, n), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and len(_completed_runs(exp)) < 2:
            time.sleep(0.1)
        before = {run for run, _, _ in _completed_runs(exp)}     # finished as the driver recorded them
        assert len(before) >= 2, (tmp_path / "first.log").read_text()[-3000:]
        os.kill(p.pid, signal.SIGKILL)                             # the driver only
        p.wait(30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    time.sleep(2)
    assert len(before) < total, "the sweep finished before the kill; nothing to resume"
    r = subprocess.run(_cmd(tmp_path, g + ["--resume"], n), cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resuming" in r.stdout
    df = parquet(tmp_path, "killme")
    f = finals(df)
    assert len(f) == total and f["run"].nunique() == total              # every trial, once
    assert not f.duplicated(["lambda", "seed"]).any()                   # no (λ, seed) repeated
    assert (f["status"] == "completed").all() and (f["epoch"] == 12).all()
    assert not df.duplicated(["run", "epoch"]).any()
    assert (df.groupby("run")["epoch"].apply(sorted) == df.groupby("run")["epoch"].apply(lambda e: list(range(1, 13)))).all()
    finished_before = before
    assert finished_before <= set(f["run"])                             # finished trials kept their ids
    after = _completed_runs(exp)
    assert len({(l, s) for _, l, s in after}) == total
    assert len(after) == total, f"a (λ, seed) completed twice: {sorted(after)}"
