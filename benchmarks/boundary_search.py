"""Adaptive boundary search vs a uniform grid, replayed on real digits outcomes.

    python -m benchmarks.boundary_search results/coexistence/results.parquet results/s1_low/results.parquet

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
import sys

import numpy as np
import pandas as pd

from dgl_ray.tune.searchers import BoundaryPolicy, fit_boundary


def pools(paths):
    df = pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)
    f = df.sort_values("epoch").groupby("run").tail(1)
    f = f[f["test_error"].notna()]
    return {round(float(l), 6): g["test_error"].to_numpy() for l, g in f.groupby("lambda")}


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


def adaptive(pool, budget, rng, n0=2):
    lams = sorted(pool)
    pol = BoundaryPolicy(lams, n0=n0, min_step=lams[1] - lams[0])
    left = {l: list(rng.permutation(pool[l])) for l in lams}
    outcomes, xs, ys = {}, [], []
    for _ in range(budget):
        used_up = {v for v in lams if not left[v]}
        if len(used_up) == len(lams):
            break
        l = pol.propose(outcomes, {}, exclude=used_up)
        l = min((v for v in lams if v not in used_up), key=lambda v: abs(v - l))   # the replayable grid
        e = left[l].pop()                                  # each run of the pool at most once
        s = score(e)
        outcomes.setdefault(l, []).append(s)
        xs.append(l)
        ys.append(s)
    return xs, ys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("parquet", nargs="+", help="results.parquet of coexistence sweeps (pooled)")
    ap.add_argument("--budgets", default="44,88,132,220")
    ap.add_argument("--repeats", type=int, default=20)
    a = ap.parse_args(argv)
    pool = pools(a.parquet)
    full = estimate(*uniform(pool, 10 ** 6, np.random.default_rng(0)), 0)
    ref = full["lambda_c_ci"][1] - full["lambda_c_ci"][0]
    print(f"all {sum(len(v) for v in pool.values())} runs: λ_c = {full['lambda_c']:.4f} "
          f"(95% CI {full['lambda_c_ci'][0]:.4f}–{full['lambda_c_ci'][1]:.4f}, width {ref:.4f}); "
          f"coexistence width {full['width']:.4f} (CI {full['width_ci'][0]:.4f}–{full['width_ci'][1]:.4f})")
    rows = []
    for b in [int(x) for x in a.budgets.split(",")]:
        for name, fn in (("uniform", uniform), ("adaptive", adaptive)):
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
