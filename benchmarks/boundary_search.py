"""Adaptive boundary search vs a uniform grid: precision (replayed on real digits outcomes) and wall time.

    python -m benchmarks.boundary_search results/coexistence/results.parquet results/s1_low/results.parquet
    python -m benchmarks.boundary_search --synthetic       # the same replay on a synthetic pool
    python -m benchmarks.boundary_search --wall            # grid vs --adaptive through Ray Tune, same trials

The replay also runs the adaptive policy in batches of ``--batch`` proposals (default 25, the digits
group size: one packed Tune trial per batch, outcomes revealed after each), to show what packing the
adaptive search costs in precision.

``--wall`` runs ``coexistence`` twice on the digits default with the same number of (λ, seed) trials and
epochs: a uniform grid (``--lambdas L --n N``) and the adaptive search (``--adaptive len(L) x N``), each
as its own command (Ray start-up included), and prints both wall times, their Tune trials and the ratio
adaptive / grid. ``--code DIR`` runs the sweeps with the package in DIR (e.g. an export of another
branch, for a before/after comparison on the same machine).

The S1 sweep on the digits default gives 50 seeds at each of 8 λ (0.42…0.56). Both strategies draw
trials from that pool (without replacement, per λ): the uniform grid takes n seeds at every λ, the
adaptive :class:`BoundaryPolicy` (the rule :class:`BoundarySearcher` runs under Tune) picks λ one trial
at a time, restricted to the same 0.02 grid and to λ whose pool is not used up, so that every trial it
asks for exists and no run is counted twice. For each budget,
λ_c and the coexistence width (logistic fit, λ at P_H 0.1 → 0.9) come with bootstrap 95% CIs; the
table gives medians over repeats. Outcome per run: H if error >= 0.40, else not H (as the analysis'
critical_point logistic fit).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from dgl_ray.boundary import fit_boundary
from dgl_ray.tune.searchers import BoundaryPolicy


def pools(paths):
    df = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    f = df.sort_values("epoch").groupby("run").tail(1)
    f = f[f["test_error"].notna()]
    return {round(float(l), 6): g["test_error"].to_numpy() for l, g in f.groupby("lambda")}


def synthetic_pool(n=50, lambda_c=0.446, width=0.0555, seed=0):
    """50 outcomes per λ on 0.36…0.56 (step 0.02) drawn from the logistic P(H | λ) with the S1 digits fit's
    λ_c and coexistence width (docs/SWEEPS.md): error 0.9 for H, 0.1 for L."""
    rng = np.random.default_rng(seed)
    w = width / (2 * np.log(9))
    return {round(0.36 + 0.02 * i, 2): np.where(rng.random(n) < 1 / (1 + np.exp(-(0.36 + 0.02 * i - lambda_c) / w)),
                                                0.9, 0.1) for i in range(11)}


def score(e):
    return 1.0 if e >= 0.40 else 0.0          # H fraction, as dgl_ray.analysis.critical_point


def estimate(xs, ys, seed):
    keep = [i for i, y in enumerate(ys) if y != 0.5]
    return fit_boundary([xs[i] for i in keep], [ys[i] for i in keep], n_boot=200, seed=seed)


def uniform(pool, budget, rng):
    lams = sorted(pool)
    n = max(1, budget // len(lams))
    xs, ys = [], []
    for l in lams:
        for e in rng.choice(pool[l], size=min(n, len(pool[l])), replace=False):
            xs.append(l)
            ys.append(score(e))
    return xs, ys


def adaptive(pool, budget, rng, n0=2, batch=1):
    """The policy's trials, ``batch`` proposals at a time (a packed Tune trial: each proposal counts the
    batch so far as pending), outcomes revealed after each batch."""
    lams = sorted(pool)
    pol = BoundaryPolicy(lams, n0=n0, min_step=lams[1] - lams[0])
    left = {l: list(rng.permutation(pool[l])) for l in lams}
    outcomes, xs, ys = {}, [], []
    while len(xs) < budget:
        pending, picked = {}, []
        for _ in range(min(batch, budget - len(xs))):
            used_up = {v for v in lams if len(left[v]) <= pending.get(v, 0)}
            if len(used_up) == len(lams):
                break
            l = pol.propose(outcomes, pending, exclude=used_up)
            l = min((v for v in lams if v not in used_up), key=lambda v: abs(v - l))   # the replayable grid
            pending[l] = pending.get(l, 0) + 1
            picked.append(l)
        if not picked:
            break
        for l in picked:
            e = left[l].pop()                              # each run of the pool at most once
            s = score(e)
            outcomes.setdefault(l, []).append(s)
            xs.append(l)
            ys.append(s)
    return xs, ys


def _sweep(code: str, storage: str, name: str, args: list[str]) -> tuple[float, pd.DataFrame]:
    """Run one coexistence sweep as its own command with the package in ``code``: (wall s, its rows)."""
    env = dict(os.environ, PYTHONPATH=code, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--storage", storage, "--name", name,
           "--progress-interval", "60", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=storage, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return wall, pd.read_parquet(os.path.join(storage, name, "results.parquet"))


def wall(a) -> int:
    lams = a.lambdas
    n_lam = len(parse_lams(lams))
    trials = n_lam * a.n
    code = os.path.abspath(a.code)
    common = ["--lambdas", lams, "--epochs", str(a.epochs)] + (["--group-size", str(a.group_size)] if a.group_size else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="dgl-boundary-wall-") as tmp:
        for name, extra in (("grid", ["--n", str(a.n)]), ("adaptive", ["--adaptive", str(trials)])):
            sec, df = _sweep(code, tmp, name, common + extra)
            runs = df["run"].nunique()
            tune_trials = (df["group"].fillna(df["run"]) if "group" in df else df["run"]).nunique()
            gs = pd.to_numeric(df["group_size"], errors="coerce").max() if "group_size" in df else float("nan")
            rows.append({"plan": name, "trials": runs, "tune_trials": tune_trials,
                         "max_group_size": 1 if gs != gs else int(gs), "wall_s": sec})
    t = pd.DataFrame(rows)
    print(f"code: {code}; digits, {n_lam} λ ({lams}) x {a.n} seeds = {trials} trials of {a.epochs} epochs each")
    print(t.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print(f"adaptive / grid wall time: {t.wall_s.iloc[1] / t.wall_s.iloc[0]:.2f}x")
    return 0


def parse_lams(text):
    from dgl_ray.schedules import parse_range
    return parse_range(text, "--lambdas")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parquet", nargs="*", help="results.parquet of coexistence sweeps (pooled)")
    ap.add_argument("--budgets", default="44,88,132,220")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--batch", type=int, default=25,
                    help="replay: also the adaptive policy proposing this many trials per batch (a packed Tune trial)")
    ap.add_argument("--synthetic", action="store_true",
                    help="replay a synthetic pool instead (see synthetic_pool: the S1 digits fit's λ_c and width)")
    ap.add_argument("--wall", action="store_true", help="time a grid and an adaptive sweep of the same size")
    ap.add_argument("--lambdas", default="0.36:0.52:0.02", help="--wall: the grid's λ (and the adaptive start grid)")
    ap.add_argument("--n", type=int, default=8, help="--wall: seeds per λ of the grid")
    ap.add_argument("--epochs", type=int, default=30, help="--wall: epochs per trial")
    ap.add_argument("--group-size", type=int, default=None, help="--wall: passed to both sweeps (default: theirs)")
    ap.add_argument("--code", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    help="--wall: the folder whose dgl_ray runs the sweeps (default: this checkout)")
    a = ap.parse_args(argv)
    if a.wall:
        return wall(a)
    if not a.parquet and not a.synthetic:
        ap.error("give results.parquet files to replay, --synthetic, or --wall")
    pool = pools(a.parquet) if a.parquet else synthetic_pool()
    full = estimate(*uniform(pool, 10 ** 6, np.random.default_rng(0)), 0)
    ref = full["lambda_c_ci"][1] - full["lambda_c_ci"][0]
    print(f"all {sum(len(v) for v in pool.values())} runs: λ_c = {full['lambda_c']:.4f} "
          f"(95% CI {full['lambda_c_ci'][0]:.4f}–{full['lambda_c_ci'][1]:.4f}, width {ref:.4f}); "
          f"coexistence width {full['width']:.4f} (CI {full['width_ci'][0]:.4f}–{full['width_ci'][1]:.4f})")
    rows = []
    for b in [int(x) for x in a.budgets.split(",")]:
        strategies = [("uniform", uniform), ("adaptive", adaptive)]
        if a.batch > 1:
            strategies.append((f"adaptive/{a.batch}", lambda p, b, r: adaptive(p, b, r, batch=a.batch)))
        for name, fn in strategies:
            r = []
            for k in range(a.repeats):
                est = estimate(*fn(pool, b, np.random.default_rng(1000 + k)), k)
                r.append((est["lambda_c"], est["lambda_c_ci"][1] - est["lambda_c_ci"][0],
                          est["width"], est["width_ci"][1] - est["width_ci"][0]))
            r = np.array(r, dtype=float)
            rows.append({"strategy": name, "trials": b, "lambda_c": np.nanmedian(r[:, 0]),
                         "abs_err_vs_all": np.nanmedian(np.abs(r[:, 0] - full["lambda_c"])),
                         "lambda_c_CI95": np.nanmedian(r[:, 1]), "width": np.nanmedian(r[:, 2]),
                         "width_CI95": np.nanmedian(r[:, 3])})
    t = pd.DataFrame(rows)
    print(t.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
