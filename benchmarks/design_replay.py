"""Trials to a given λ_c precision on a synthetic logistic pool: the 8-λ grid, the version-2 adaptive rule
(BoundaryPolicy on a 0.01 grid) and the version-3 design (BoundaryDesign, continuous λ), the adaptive ones
in populations of ``--batch`` trials (outcomes revealed per population, as a packed sweep sees them).

    python -m benchmarks.design_replay --reps 40

The pool: P(H | λ) logistic with the CIFAR S1 fit's λ_c 0.45 and width 0.0555 (λ at P_H 0.1 to 0.9), any λ
in [0.42, 0.56] (the paper's S1 range). Each strategy runs ``--reps`` times; at each budget the table gives
the spread of its λ_c estimates over the replicates (RMSE against the true λ_c: the SD a researcher would
see) and the share of replicates whose width is within ±25% of the true one. Estimates: the maximum-likelihood
logistic fit (dgl_ray.boundary) for every strategy, and the design's posterior mean for the design.
Last lines: the trials each needs for RMSE(λ_c) <= 0.005, for the grid's RMSE at 400 trials, and for the width
within ±25% in 90% of the repeats, with the ratio to the grid.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from dgl_ray.boundary import fit_boundary
from dgl_ray.design import WIDTH_PER_S, BoundaryDesign
from dgl_ray.tune.searchers import BoundaryPolicy

LAMBDA_C, WIDTH = 0.45, 0.0555
GRID = [round(0.42 + 0.02 * k, 2) for k in range(8)]
BUDGETS = tuple(range(16, 401, 16))                 # estimates after every population of 16
SHOWN = (48, 96, 144, 192, 240, 320, 400)


def draw(rng, lam):
    return float(rng.random() < 1 / (1 + math.exp(-(lam - LAMBDA_C) / (WIDTH / WIDTH_PER_S))))


def mle(lams, ys):
    est = fit_boundary(lams, ys, n_boot=0)
    return est["lambda_c"], est["width"]


def run_grid(rng, batch):
    lams, ys, out = [], [], {}
    for n in range(1, max(BUDGETS) // len(GRID) + 1):        # seed after seed: every λ once per round
        for lam in GRID:
            lams.append(lam)
            ys.append(draw(rng, lam))
        if len(lams) in BUDGETS:
            out[len(lams)] = {"mle": mle(lams, ys)}
    return out


def run_policy(rng, batch):
    pol = BoundaryPolicy(GRID, n0=2, min_step=0.01)
    outcomes, lams, ys, out = {}, [], [], {}
    while len(lams) < max(BUDGETS):
        pending: dict = {}
        props = []
        for _ in range(batch):
            lam = pol.propose(outcomes, pending)
            pending[lam] = pending.get(lam, 0) + 1
            props.append(lam)
        for lam in props:
            y = draw(rng, lam)
            outcomes.setdefault(lam, []).append(y)
            lams.append(lam)
            ys.append(y)
            if len(lams) in BUDGETS:
                out[len(lams)] = {"mle": mle(lams, ys)}
    return out


def run_design(rng, batch):
    d = BoundaryDesign(GRID[0], GRID[-1], seed=int(rng.integers(1 << 30)))
    lams, ys, out = [], [], {}
    while len(lams) < max(BUDGETS):
        for lam, _ in d.propose(batch):
            y = draw(rng, lam)
            d.add(lam, "H" if y else "not_H")
            lams.append(lam)
            ys.append(y)
            if len(lams) in BUDGETS:
                s = d.summary()
                out[len(lams)] = {"mle": mle(lams, ys), "posterior": (s["lambda_c"], s["width"])}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    strategies = {"grid 8λ": run_grid, "v2 policy": run_policy, "v3 design": run_design}
    curves = {}
    print(f"{'strategy':<22} {'trials':>6} {'RMSE λ_c':>9} {'width ±25%':>10}")
    for name, fn in strategies.items():
        runs = [fn(np.random.default_rng([a.seed, r]), a.batch) for r in range(a.reps)]
        for est in runs[0][BUDGETS[-1]]:
            label = f"{name} ({est})"
            curve = curves[label] = {}
            for n in BUDGETS:
                got = np.array([r[n][est] for r in runs if n in r], dtype=float)
                if not len(got):
                    continue
                ok = ~np.isnan(got[:, 0])
                rmse = float(np.sqrt(np.mean((got[ok, 0] - LAMBDA_C) ** 2))) if ok.any() else math.nan
                within = float(np.mean(np.abs(got[:, 1] / WIDTH - 1) <= 0.25))     # no fit counts as a miss
                curve[n] = (rmse, within)
                if n in SHOWN:
                    print(f"{label:<22} {n:>6} {rmse:>9.4f} {within:>10.2f}")
    grid = curves["grid 8λ (mle)"]
    goals = {"RMSE(λ_c) <= 0.005": lambda r, w: r <= 0.005,
             f"RMSE(λ_c) <= the grid's at {BUDGETS[-1]} ({grid[BUDGETS[-1]][0]:.4f})":
                 lambda r, w: r <= grid[BUDGETS[-1]][0],
             "width within ±25% in >= 90% of the repeats": lambda r, w: w >= 0.9}
    for goal, ok in goals.items():
        first = {k: next((n for n, (r, w) in sorted(c.items()) if ok(r, w)), None) for k, c in curves.items()}
        g = first["grid 8λ (mle)"]
        print(f"trials to {goal}: " + ", ".join(
            f"{k} {v or f'>{BUDGETS[-1]}'}" + (f" ({g / v:.2f}x fewer)" if g and v and k != "grid 8λ (mle)" else "")
            for k, v in first.items()))


if __name__ == "__main__":
    main()
