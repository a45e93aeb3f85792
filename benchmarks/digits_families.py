"""Measure what each sweep family shows on the digits default, cheaply: trials packed into one
batched model per group (dgl_ray.batched.run_group), no Ray. The numbers fix the digits defaults
(each family's Family.digits_defaults in dgl_ray/sweeps/<family>.py) and docs/FAMILIES.md.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/digits_families.py loop spinodal ...

Each experiment prints the family's own table (dgl_ray.analysis) and its wall time.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import defaultdict

import pandas as pd

from dgl_ray.analysis import gap_table, hysteresis_table, spinodal_table, branch_table, survival_table
from dgl_ray.batched import run_group, run_trial
from dgl_ray.config import TrialConfig
from dgl_ray.trainer import Trial

pd.set_option("display.width", 200)
pd.set_option("display.max_columns", 30)
TMP = tempfile.mkdtemp(prefix="dgl-digits-")
LABELS = ("hold", "origin", "variant", "target_lambda", "ladder_end")


def run(cfgs: list[dict]) -> pd.DataFrame:
    """Train every config (grouped by epochs and width: a batched group shares both); one tidy frame."""
    by_len = defaultdict(list)
    for i, c in enumerate(cfgs):
        trial = {k: v for k, v in c.items() if k not in LABELS}
        rc = TrialConfig.from_dict(trial)
        by_len[(rc.epochs, rc.width)].append((i, trial))
    rows = []
    for _, members in sorted(by_len.items()):
        for start in range(0, len(members), 25):
            chunk = members[start:start + 25]

            def on_eval(m, j, chunk=chunk):
                i = chunk[j][0]
                rows.append(dict(m, run=f"r{i:04d}", **{k: cfgs[i].get(k) for k in
                                                         ("seed", "eta", "width") + LABELS if k in cfgs[i]}))
            run_group([t for _, t in chunk], on_eval=on_eval)
    df = pd.DataFrame(rows)
    df["status"] = df["status"].fillna("completed")
    return df


def checkpoint(lam: float, epochs: int, seed: int, eta: float, name: str, **kw) -> tuple[str, float]:
    path = os.path.join(TMP, f"{name}_{seed}_{eta}.pt")
    t = Trial(TrialConfig.from_dict(dict(dataset="digits", **{"lambda": lam}, epochs=epochs, seed=seed, eta=eta, **kw)))
    s = run_trial(t)
    t.save(path)
    return path, s["final_error"]


def loop(seeds=range(4), eta=0.4):
    """R1 in-run loop 0.20->0.64->0.22 (refine 0.36:0.52:0.01 around digits' λ_c): constant LR vs the
    paper's decays at 50% / 75% of the loop."""
    seg = {"kind": "ladder", "points": [0.20, 0.64, 0.22], "step": 0.02, "refine": [0.36, 0.52, 0.01], "hold": 1}
    n = len(Trial(TrialConfig.from_dict(dict(dataset="digits", lambda_schedule=[seg]))).plans)
    cfgs = []
    for variant, ms in (("constant", []), ("decay", [n // 2, (3 * n) // 4])):
        for s in seeds:
            cfgs.append(dict(dataset="digits", eta=eta, seed=s, lambda_schedule=[seg], lr_milestones=ms,
                             variant=variant, hold=1))
    df = run(cfgs)
    print(f"loop: {n} epochs, decay milestones {[n // 2, (3 * n) // 4]}")
    for v, d in df.groupby("variant"):
        t = hysteresis_table(d)
        print(f"-- {v}\n", t[t["lambda"].isin([0.22, 0.30, 0.36, 0.40, 0.44, 0.48, 0.50])].to_string(index=False))
    return df


def sweeps(seeds=range(3), eta=0.4, holds=(1, 3, 10), lrs=(0.001, 0.01, 0.1), up=(0.30, 0.70), down=(0.70, 0.30),
           step=0.04, ordered_lam=0.30, collapse_lam=0.70, prep_epochs=30):
    """Tα/Tβ: sweeps from ordered / collapse checkpoints; gap vs hold length and sweep LR."""
    cfgs = []
    for s in seeds:
        for origin, lam, pts in (("ordered", ordered_lam, up), ("collapse", collapse_lam, down)):
            path, err = checkpoint(lam, prep_epochs, s, eta, origin)
            print(f"prep {origin} seed {s}: error {err:.3f}")
            for h in holds:
                for lr in lrs:
                    cfgs.append(dict(dataset="digits", eta=eta, seed=s, init_checkpoint=path, origin=origin, hold=h,
                                     lr=lr, lr_milestones=[], variant=f"lr={lr:g}",
                                     lambda_schedule=[{"kind": "ladder", "points": list(pts), "step": step,
                                                       "hold": h}]))
    df = run(cfgs)
    for v, d in df.groupby("variant"):
        t = gap_table(d, axes=("hold",))
        print(f"-- sweep {v}\n", t.pivot_table(index="lambda", columns="hold", values="gap").round(3).to_string())
    return df


def spinodal(seeds=range(4), eta=0.4, up_init=0.35, down_init=0.65, up=(0.40, 0.70), down=(0.60, 0.20), holds=(1, 3),
             init_epochs=20, lr_milestones=()):
    """R3: init at a fixed λ then a one-way ladder, in one run (constant LR)."""
    cfgs = []
    for s in seeds:
        for d, init, pts in (("up", up_init, up), ("down", down_init, down)):
            for h in holds:
                cfgs.append(dict(dataset="digits", eta=eta, seed=s, hold=h, ladder_end=pts[1],
                                 lr_milestones=list(lr_milestones),
                                 lambda_schedule=[{"kind": "constant", "value": init, "epochs": init_epochs,
                                                   "name": "init"},
                                                  {"kind": "ladder", "points": list(pts), "step": 0.02, "hold": h}]))
    df = run(cfgs)
    init = df[df["phase"] == "init"].sort_values("epoch").groupby("run").tail(1)
    print(f"spinodal η={eta}: init errors up", init[init["lambda"] == up_init]["test_error"].round(2).tolist(),
          "down", init[init["lambda"] == down_init]["test_error"].round(2).tolist())
    print(spinodal_table(df).to_string(index=False))
    return df


def fixed(lams, seeds=range(6), eta=0.4, epochs=30, widths=(1.0,)):
    """S1/S2/M/Q1: fresh fixed-λ runs; L/H counts per λ (and width)."""
    cfgs = [dict(dataset="digits", eta=eta, seed=s, **{"lambda": l}, epochs=epochs, width=w)
            for w in widths for l in lams for s in seeds]
    df = run(cfgs)
    print(branch_table(df, axes=("width", "eta")).to_string(index=False))
    return df


def lifetime(targets=(0.46, 0.50, 0.54), seeds=range(6), eta=0.4, init_lam=0.30, observe=30, lr=0.01, drop=10):
    cfgs = []
    for s in seeds:
        path, err = checkpoint(init_lam, 30, s, eta, "ordered")
        for t in targets:
            cfgs.append(dict(dataset="digits", eta=eta, seed=s, init_checkpoint=path, origin="ordered", target_lambda=t,
                             lr=lr, lr_milestones=[drop], lambda_schedule=[{"kind": "constant", "value": t,
                                                                             "epochs": observe, "name": "observe"}]))
    df = run(cfgs)
    print(survival_table(df, axes=("eta", "target_lambda")).to_string(index=False))
    return df


EXPERIMENTS = {"loop": loop, "sweeps": sweeps, "spinodal": spinodal, "fixed": fixed, "lifetime": lifetime}

if __name__ == "__main__":
    import ast
    for arg in sys.argv[1:]:
        name, _, kw = arg.partition(":")
        kwargs = {}
        for kv in filter(None, kw.split(";")):          # name:key=value;key=value (values: Python literals)
            k, _, v = kv.partition("=")
            kwargs[k.strip()] = ast.literal_eval(v.strip())
        t0 = time.time()
        print(f"== {name} {kwargs}", flush=True)
        EXPERIMENTS[name](**kwargs)
        print(f"== {name}: {time.time() - t0:.0f} s", flush=True)
