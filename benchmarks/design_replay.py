"""Trials to a given λ_c precision on a synthetic logistic pool: the 8-λ grid, the version-2 adaptive rule
(BoundaryPolicy on a 0.01 grid) and the version-3 design (BoundaryDesign, continuous λ), the adaptive ones
in populations of ``--batch`` trials (outcomes revealed per population, as a packed sweep sees them).

    python -m benchmarks.design_replay --reps 40

The pool: P(H | λ) logistic with the digits S1 fit's λ_c 0.45 and width 0.0555 (λ at P_H 0.1 to 0.9), any λ
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


# two dimensions: λ_c(η) linear across the scan family's η values, one width; the grid fits each η alone
ETAS = (0.2, 0.4, 0.6, 0.8)
GRID_2D = [round(0.30 + 0.03 * k, 2) for k in range(8)]
BUDGETS_2D = tuple(range(64, 641, 64))


def lambda_c_of(eta: float) -> float:
    return 0.30 + 0.2 * eta


def draw_2d(rng, lam, eta):
    return float(rng.random() < 1 / (1 + math.exp(-(lam - lambda_c_of(eta)) / (WIDTH / WIDTH_PER_S))))


def run_grid_2d(rng, batch):
    pts, out = [], {}
    for _ in range(max(BUDGETS_2D) // (len(GRID_2D) * len(ETAS))):
        pts += [(lam, eta, draw_2d(rng, lam, eta)) for eta in ETAS for lam in GRID_2D]
        if len(pts) in BUDGETS_2D:
            out[len(pts)] = [mle([p[0] for p in pts if p[1] == eta], [p[2] for p in pts if p[1] == eta])[0]
                             for eta in ETAS]
    return out


def run_design_2d(rng, batch):
    d = BoundaryDesign(GRID_2D[0], GRID_2D[-1], axis="eta", axis_values=ETAS, seed=int(rng.integers(1 << 30)))
    out = {}
    while d.n < max(BUDGETS_2D):
        for lam, eta in d.propose(batch):
            d.add(lam, "H" if draw_2d(rng, lam, eta) else "not_H", x=eta)
            if d.n in BUDGETS_2D:
                s = d.summary()
                out[d.n] = [s[eta]["lambda_c"] for eta in ETAS]
    return out


def two_dimensions(a) -> None:
    print(f"two dimensions: λ_c(η) = 0.30 + 0.2 η at η {', '.join(map(str, ETAS))}, width {WIDTH}; grid "
          f"{len(GRID_2D)} λ x {len(ETAS)} η (per-η fits) vs the design in populations of {a.batch}")
    print(f"{'strategy':<12} {'trials':>6} {'max over η of RMSE λ_c':>24}")
    first = {}
    for name, fn in (("grid", run_grid_2d), ("v3 design", run_design_2d)):
        runs = [fn(np.random.default_rng([a.seed, 2, r]), a.batch) for r in range(a.reps)]
        for n in BUDGETS_2D:
            got = np.array([r[n] for r in runs], dtype=float)
            rmse = max(float(np.sqrt(np.nanmean((got[:, i] - lambda_c_of(e)) ** 2))) for i, e in enumerate(ETAS))
            print(f"{name:<12} {n:>6} {rmse:>24.4f}")
            if rmse <= 0.005 and name not in first:
                first[name] = n
    print("trials to RMSE(λ_c) <= 0.005 at every η: " + ", ".join(f"{k} {v}" for k, v in first.items()))


def to_target(a) -> None:
    """Trials until the design's own stop (SD(λ_c) <= 0.005 and the width's 95% interval within ±25%, at every
    η in two dimensions), unaimed (D-optimal) and aimed at that target (BoundaryDesign.aim)."""
    cases = {"λ": (lambda seed: BoundaryDesign(GRID[0], GRID[-1], seed=seed), lambda rng, lam, x: draw(rng, lam)),
             "λ x η": (lambda seed: BoundaryDesign(GRID_2D[0], GRID_2D[-1], axis="eta", axis_values=ETAS, seed=seed),
                       lambda rng, lam, x: draw_2d(rng, lam, x))}
    for case, (make, outcome) in cases.items():
        for aimed in (False, True):
            n = []
            for r in range(a.reps):
                rng = np.random.default_rng([a.seed, 3, r])
                d = make(int(rng.integers(1 << 30)))
                d.aim(0.005 if aimed else None)
                while d.n < 2000 and not d.reached(0.005):
                    for lam, x in d.propose(a.batch):
                        d.add(lam, "H" if outcome(rng, lam, x) else "not_H", x=x)
                n.append(d.n)
            print(f"{case:<6} {'aimed' if aimed else 'D-optimal':<10} trials to the stop: median {np.median(n):.0f}, "
                  f"mean {np.mean(n):.0f} ({a.reps} repeats)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--two-d", action="store_true", help="the λ x η case instead (the scan family's axis)")
    ap.add_argument("--to-target", action="store_true",
                    help="trials to the design's own stop (--target-sd 0.005), D-optimal vs aimed")
    a = ap.parse_args(argv)
    if a.two_d:
        return two_dimensions(a)
    if a.to_target:
        return to_target(a)
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
