"""Issue 8, item 2: an interrupted sweep (SIGINT, SIGTERM) stops its trials, keeps their checkpoints, exits
non-zero and prints the exact --resume command; unfinished trials are never counted as final; a corrupted
checkpoint fails its trial with a clear message and the sweep says so in its exit code and tables."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests._sweep_helpers import ROOT, finals, interrupt_sweep, parquet

N_SEEDS, EPOCHS = 2, 8


def _cmd(storage):
    return [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", "0.3,0.6", "--n", str(N_SEEDS),
            "--epochs", str(EPOCHS), "--storage", str(storage), "--name", "sig", "--num-cpus", "2",
            "--checkpoint-every", "1", "--group-size", "1", "--progress-interval", "2", "--max-failures", "0"]


def _running_with_checkpoint(exp: Path) -> bool:
    """Some trial has reported epoch >= 2 (so it has a checkpoint) and is still running."""
    for rj in exp.glob("*/result.json"):
        lines = [ln for ln in rj.read_text().splitlines() if ln.strip()]
        try:
            last = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            continue
        if last.get("status") == "running" and last.get("epoch", 0) >= 2:
            return True
    return False


def _interrupt(tmp_path, sig):
    return interrupt_sweep(_cmd(tmp_path), lambda: _running_with_checkpoint(tmp_path / "sig"), sig)


def _resume_line(out: str) -> str:
    lines = out.splitlines()
    i = [k for k, ln in enumerate(lines) if "continue it with:" in ln][-1]
    return lines[i + 1].strip()


@pytest.mark.parametrize("sig", [signal.SIGINT,
                                 pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])  # ≈ 40-80 s each
def test_signal_stops_honestly_and_resume_finishes(tmp_path, sig):
    rc, out = _interrupt(tmp_path, sig)
    assert rc == 128 + sig, out[-3000:]
    cmd = _resume_line(out)
    assert cmd.startswith(f"cd {ROOT} && ") and cmd.endswith("--resume") and "--lambdas 0.3,0.6" in cmd
    df = parquet(tmp_path, "sig")
    assert df["run_status"].notna().all()                                   # every row has its run's status
    unfinished = set(df.loc[df["run_status"] == "unfinished", "run"])
    assert unfinished, "no trial was running when the signal came"
    # the unfinished runs are not in the printed table: only finished runs are counted, the rest missing
    assert "counted as missing" in out
    n_done = df.loc[df["run_status"] == "completed", "run"].nunique()
    table_n = sum(int(ln.split()[1]) for ln in out.splitlines() if ln.strip().startswith(("0.300", "0.600")))
    assert table_n == n_done
    # their checkpoints are kept (one per trial folder)
    from dgl_ray.analysis import load_experiment
    from dgl_ray.analysis.frames import missing_trials
    d = load_experiment(tmp_path / "sig")
    c = missing_trials(d)
    assert c["finished"] == n_done and c["missing"] == 2 * N_SEEDS - n_done
    for run in unfinished:
        folder = [f for f in (tmp_path / "sig").iterdir() if run in f.name][0]
        assert list(folder.glob("checkpoint_*/trial.pt"))   # (Tune may not have pruned the one before yet)

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    if sig == signal.SIGTERM:
        # corrupt the checkpoints of the stopped trials: they fail with a clear message, and nothing
        # counts them as final
        for run in unfinished:
            folder = [f for f in (tmp_path / "sig").iterdir() if run in f.name][0]
            for ck in folder.glob("checkpoint_*/trial.pt"):
                ck.write_bytes(ck.read_bytes()[:1000])
    r = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=400)
    df = parquet(tmp_path, "sig")
    f = finals(df)
    if sig == signal.SIGINT:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert len(f) == 2 * N_SEEDS and not f.duplicated(["lambda", "seed"]).any()
        assert (f["status"] == "completed").all() and (f["epoch"] == EPOCHS).all()
        assert (df["run_status"] == "completed").all()
        # storage: one checkpoint per trial, no progress.csv / tfevents (the metrics are written once)
        folders = [p for p in (tmp_path / "sig").iterdir() if (p / "params.json").exists()]
        assert len(folders) == 2 * N_SEEDS
        for folder in folders:
            names = sorted(x.name for x in folder.iterdir())
            assert not [n for n in names if n == "progress.csv" or n.startswith("events.out")], names
            assert len(list(folder.glob("checkpoint_*"))) == 1, names
    else:
        assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
        errored = set(df.loc[df["run_status"] == "error", "run"])
        assert errored == unfinished
        # the message is each errored run's fatal error row (the trial returns normally so that Tune does
        # not retry it: Tune writes error.txt only for trials that raise), and the sweep prints it
        msgs = df.loc[df["run_status"] == "error"].groupby("run")["error"].last()
        assert set(msgs.index) == unfinished and msgs.str.contains("cannot be read").all(), msgs
        assert "cannot be read" in r.stdout
        assert f"{len(unfinished)} errored" in r.stdout and "counted as missing" in r.stdout
        from dgl_ray.analysis import branch_table, load_experiment
        bt = branch_table(load_experiment(tmp_path / "sig"))
        assert bt["n_missing"].sum() == len(unfinished)
        assert (bt["L"] + bt["intermediate"] + bt["H"]).sum() == 2 * N_SEEDS - len(unfinished)
