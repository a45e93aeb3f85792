"""The early decisions on seeds the classifier never saw: a live check of δ (issue 19).

    python -m benchmarks.early_unseen --run                         # the sweep below (~4 min on 2 cores), then the table
    python -m benchmarks.early_unseen --folder results/early_unseen # the table of a finished sweep

The shipped digits classifier (``dgl_ray/early_models.json``) was fitted on the digits pools, seeds 0-49.
``--run`` trains the S1 grid on seeds 50-69 to the end (``coexistence --lambdas 0.36:0.56:0.02 --seeds
50:69:1``, no decisions), then replays the classifier's :meth:`~dgl_ray.early.BranchClassifier.decide` on
every run's trajectory, evaluation by evaluation, as a live ``--decide-early δ`` member would (a member's
trajectory does not depend on its population: tests/test_refill.py), and prints per δ the runs decided,
how many of those decided branches differ from the run's final one, and the trial-epochs spent.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from dgl_ray.early import DELTAS, BranchClassifier
from dgl_ray.paper import H_MIN
from dgl_ray.tidy import final_rows, load_experiment

SWEEP = ["--lambdas", "0.36:0.56:0.02", "--seeds", "50:69:1"]


def decisions(df, delta: float) -> dict:
    """Per δ: completed runs, decided ones, decided branches that are not the final one, trial-epochs spent."""
    clf = BranchClassifier.load("digits")
    done = set(final_rows(df, ["run"]).query("run_status == 'completed'")["run"].astype(str))
    out = {"runs": 0, "decided": 0, "wrong": 0, "spent": 0, "total": 0}
    for run, g in df.sort_values("epoch").groupby("run", observed=True):
        if str(run) not in done:
            continue
        ep, err = g["epoch"].astype(int).tolist(), g["test_error"].astype(float).tolist()
        total = int(g["epochs"].iloc[-1])
        ms = g["lr_milestones"].iloc[-1] if "lr_milestones" in g else None
        milestones = [] if ms is None else [int(m) for m in ms]
        out["runs"] += 1
        out["total"] += total
        d = clf.first_decision(ep, err, total, milestones, delta)
        if d is None:
            out["spent"] += total
            continue
        out["decided"] += 1
        out["wrong"] += (d[1] == "H") != (err[-1] >= H_MIN)
        out["spent"] += d[0]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="results/early_unseen", help="the sweep folder (default: %(default)s)")
    p.add_argument("--run", action="store_true", help="run the sweep into --folder first")
    a = p.parse_args(argv)
    if a.run:
        storage, name = os.path.split(os.path.abspath(a.folder))
        cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", *SWEEP, "--storage", storage, "--name", name]
        print("$", " ".join(cmd[1:]), flush=True)
        subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    df = load_experiment(a.folder)
    print(f"{'delta':>6} {'runs':>5} {'decided':>8} {'wrong':>6} {'wrong_rate':>10} {'trial_epochs':>13} {'saved':>6}")
    for delta in DELTAS:
        r = decisions(df, delta)
        rate = r["wrong"] / r["decided"] if r["decided"] else float("nan")
        print(f"{delta:>6} {r['runs']:>5} {r['decided']:>8} {r['wrong']:>6} {rate:>10.3f} "
              f"{r['spent']:>6}/{r['total']:<6} {1 - r['spent'] / r['total']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
