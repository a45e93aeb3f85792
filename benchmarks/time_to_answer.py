"""Time to answer: trial-epochs and wall time until λ_c and the coexistence width are known.

    python -m benchmarks.time_to_answer                    # parts (a)-(d); --skip-live leaves out (c)
    python -m benchmarks.time_to_answer --skip-live --repeats 5      # a quick look (about a minute)

The answer: SD(λ_c) <= ``--target-sd`` (0.005) and the coexistence width's 95% interval within
±``--width-rel`` (25%) of the width estimate (the rule :meth:`BoundaryDesign.reached` applies live). Three
strategies reach it:

- **grid**: n seeds at every λ of the pool's grid, n = 1, 2, ... (one more seed everywhere per round);
- **adaptive**: the boundary design (:class:`dgl_ray.design.BoundaryDesign`, aimed at the targets as
  ``--target-sd`` aims it live) proposes batches of ``--batch`` (25, a digits population) trials at once,
  outcomes revealed after each batch;
- **adaptive+early**: the same, each trial stopped at the first evaluation where
  :meth:`dgl_ray.early.BranchClassifier.decide` with δ = ``--delta`` (0.05) returns a branch; it costs the
  epochs until then and its outcome is the decided branch (a misclassified run counts against the
  precision as it would live), else all epochs and its final outcome.

One estimator for all three (:func:`estimate`): the Bayesian posterior of the logistic P(H | λ) =
1/(1 + exp(-(λ - λ_c)/w)) on a grid (λ_c uniform in the search range, log w uniform), H = final error
>= paper.H_MIN (the trap counts as H); SD(λ_c) is the posterior SD and the width's interval the posterior
2.5-97.5% quantiles of 2 w ln 9. Each strategy checks the rule after each round / batch and stops at the
first that meets it; the tables give medians over ``--repeats`` (20) repeats, the fraction of repeats
whose λ_c at the stop is within 2 SD (2 x 0.005) of the all-runs value and whose width is within ±25% of
it ("right"), the decided runs' misclassification ("wrong"), and the trial-epochs to SD(λ_c) <= target
alone ("sd_only_epochs"). Wall time = trial-epochs x the pool's measured
seconds per trial-epoch on one CPU (slots stay busy: a decided member's slot is refilled).

(a) replay on the digits S1 pool (tests/data/digits-pools/s1.parquet: 11 λ x 50 seeds, 30 epochs, every
    epoch's error) and the replay-only pool tests/data/digits-replay/s1dense.parquet (17 λ every 0.01 in
    0.37…0.53 x 150 more seeds): the grid draws at its 11 levels, the design at any level of either
    (live, λ is continuous; held to the grid's levels and their 50 runs, the design ran out of runs
    where it samples most: ``--grid-levels-only`` replays that), runs drawn without replacement, their
    real trajectories for the decisions.
(b) synthetic: outcomes drawn from the logistic with the CIFAR S1 fit's λ_c and width
    (dgl_ray.analysis.critical_point on tests/data/paper-results/S1), λ continuous, the grid the paper's
    8 λ (0.42…0.56); each run's trajectory (for the decisions) drawn from the archive's S2 CIFAR
    trajectories (error every 10 of 100 epochs) with the same final branch; wall time at the issue's
    72 A100-hours / 40,000 trial-epochs.
(c) live on digits through Ray Tune: the grid sweep vs ``coexistence --adaptive ... --target-sd`` (+
    ``--decide-early``), each its own command, seeds from ``--live-seed0`` (300: seeds the shipped
    classifier never saw); wall time measured, trial-epochs from the rows. The adaptive sweeps stop at
    their answer; the grid runs ``--live-n`` seeds per λ, and its answer is counted as in (a): its first n
    seeds per λ, the least n that meets the rule ("answer_epochs"; not met by all of them, extrapolated, "~"),
    its wall scaled to that share of its trial-epochs.
(d) two dimensions on the digits λ x η pool (tests/data/digits-pools/eta.parquet: 5 η x 26 λ x 12 seeds;
    the design also at the levels of tests/data/digits-replay/etadense.parquet, λ every 0.01 in 0.36…0.53
    x 30 more seeds):
    λ_c at every η to SD <= target (the width not required), the grid (n seeds at every (η, λ)) vs the
    2-D design (λ_c(η) smooth across η); a second table judges every strategy with the 2-D design's own
    smooth posterior (:class:`SmoothPosterior`) instead of one posterior per η.

A repeat that does not reach the answer within the pool (or ``--max-synthetic``) counts the trials it used
extrapolated as n x (SD / target)² (or the width's spread / width-rel, squared, whichever is larger); a
median that rests on half or more such repeats is marked ``~``.

Each table ends with ``bound``: the fewest trials any design needs when λ_c and the width are known
beforehand (:func:`information_bound`, Fisher information; every trial to the end).

Last line: ``trial-epochs vs grid: X.XX`` = the grid's median trial-epochs to the answer / the best adaptive
strategy's (adaptive+early where the classifier is there) in (a), the digits replay.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dgl_ray.analysis import SkippedFileWarning, critical_point, load_legacy
from dgl_ray.design import BoundaryDesign
from dgl_ray.early import FOLDS, BranchClassifier, check_delta, cifar_runs, digits_runs, fit_family
from dgl_ray.errors import ConfigError
from dgl_ray.paper import outcome_of
from dgl_ray.schedules import parse_range
from dgl_ray.tidy import load_experiment, outcome_rows

ROOT = Path(__file__).resolve().parent.parent
POOLS = ROOT / "tests" / "data" / "digits-pools"
REPLAY = ROOT / "tests" / "data" / "digits-replay"       # replay-only pools: λ every 0.01 in the band
ARCHIVE = ROOT / "tests" / "data" / "paper-results"
WIDTH_PER_W = 2 * math.log(9)           # coexistence width (P_H 0.1 -> 0.9) = 2 w ln 9
LOOSE_WIDTH_REL = 10.0                  # the design's width target where a part asks for λ_c only
CIFAR_SECONDS_PER_TRIAL_EPOCH = 72 * 3600 / (400 * 100)   # the issue: S1 = 400 trials x 100 epochs, 72 A100-h


# ---------------------------------------------------------------------------------------------- runs

@dataclass(frozen=True)
class Run:
    """One run of a pool: its λ, its second-axis value (η) or None, its evaluations and final error."""
    lam: float
    x: float | None
    epochs: tuple[int, ...]
    errors: tuple[float, ...]
    seed: int = 0           # its fold for the held-out early decisions (seed mod dgl_ray.early.FOLDS)

    @property
    def final(self) -> float:
        return self.errors[-1]


def high(outcome: str) -> int:
    """1 for an H outcome (the trap included), 0 for not_H."""
    return 0 if outcome == "not_H" else 1


def read_pool(path: Path, axis: str | None = None) -> list[Run]:
    """The finished runs of a compact pool (benchmarks.digits_pools), diverged ones left out (no outcome)."""
    df = pd.read_parquet(path)
    runs = []
    for _, g in df.groupby("run", observed=True):
        g = g.sort_values("epoch")
        if str(g["status"].iloc[-1]) != "completed" or not np.isfinite(g["test_error"].iloc[-1]):
            continue
        runs.append(Run(round(float(g["lambda"].iloc[0]), 6), None if axis is None else round(float(g[axis].iloc[0]), 6),
                        tuple(int(e) for e in g["epoch"]), tuple(float(e) for e in g["test_error"]),
                        int(g["seed"].iloc[0])))
    return runs


def seconds_per_trial_epoch(path: Path) -> float:
    return float(pd.read_parquet(path).attrs.get("seconds_per_trial_epoch") or math.nan)


# ------------------------------------------------------------------------------------------ estimator

def estimate(lams, highs, lo: float, hi: float) -> dict:
    """The logistic boundary's posterior (λ_c uniform in [lo, hi], log w uniform in [1e-4, (hi-lo)/2]) on a
    grid, refined once around its mass: λ_c (posterior mean), its SD, the width (median of 2 w ln 9) and
    the width's 95% interval."""
    lams = np.asarray(lams, dtype=float)
    highs = np.asarray(highs, dtype=float)
    levels, inv = np.unique(lams, return_inverse=True)
    k = np.bincount(inv, weights=highs, minlength=len(levels))
    n = np.bincount(inv, minlength=len(levels)).astype(float)
    log_w = (math.log(1e-4), math.log((hi - lo) / 2))
    c_box, w_box = (lo, hi), log_w
    for n_c, n_w in ((80, 40), (120, 60)):
        c = np.linspace(*c_box, n_c)
        lw = np.linspace(*w_box, n_w)
        z = (levels[None, None, :] - c[:, None, None]) / np.exp(lw)[None, :, None]
        ll = (-n * np.logaddexp(0, -z) - (n - k) * z).sum(axis=2)   # k log σ(z) + (n - k) log σ(-z)
        post = np.exp(ll - ll.max())
        post /= post.sum()
        mass = post > post.max() * 1e-7
        ci, wi = np.flatnonzero(mass.any(axis=1)), np.flatnonzero(mass.any(axis=0))
        dc, dw = c[1] - c[0], lw[1] - lw[0]
        c_box = (max(lo, c[ci[0]] - dc), min(hi, c[ci[-1]] + dc))
        w_box = (max(log_w[0], lw[wi[0]] - dw), min(log_w[1], lw[wi[-1]] + dw))
    pc, pw = post.sum(axis=1), post.sum(axis=0)
    mean = float((pc * c).sum())
    sd = float(math.sqrt(max((pc * (c - mean) ** 2).sum(), 0.0)))
    cdf = np.cumsum(pw)
    q = [float(np.exp(np.interp(p, cdf, lw))) * WIDTH_PER_W for p in (0.025, 0.5, 0.975)]
    return {"lambda_c": mean, "lambda_c_sd": max(sd, dc / math.sqrt(12)), "width": q[1], "width_ci": (q[0], q[2]),
            "n": int(n.sum())}


def width_spread(est: dict) -> float:
    """How far the width's 95% interval reaches from the width, relative to it (the larger side)."""
    lo, hi = est["width_ci"]
    return max(hi / est["width"] - 1, 1 - lo / est["width"])


def reached(est: dict, target_sd: float, width_rel: float | None) -> bool:
    """SD(λ_c) <= target_sd and (unless width_rel is None) the width's 95% interval within ±width_rel."""
    if est["lambda_c_sd"] > target_sd:
        return False
    if width_rel is None:
        return True
    return width_spread(est) <= width_rel


# ---------------------------------------------------------------------------------------------- sources

class ReplayPool:
    """A pool's runs drawn without replacement per (λ, x) cell; a used-up cell hands out the nearest cell
    (same x) that has runs left, so that every trial asked for is a real run, none counted twice."""

    def __init__(self, runs: list[Run], rng: np.random.Generator):
        self.cells: dict[tuple[float, float | None], list[Run]] = {}
        for r in runs:
            self.cells.setdefault((r.lam, r.x), []).append(r)
        for key, rs in self.cells.items():
            self.cells[key] = [rs[i] for i in rng.permutation(len(rs))]

    def remaining(self, lam: float, x: float | None) -> int:
        return len(self.cells.get((lam, x), ()))

    def take(self, lam: float, x: float | None) -> Run | None:
        open_cells = [k for k, rs in self.cells.items() if rs and k[1] == x]
        if not open_cells:
            return None
        return self.cells[min(open_cells, key=lambda k: abs(k[0] - lam))].pop()


class SyntheticSource:
    """Outcomes from the logistic P(H | λ) with ``lambda_c`` and ``width``, λ continuous; each run gets a
    trajectory drawn from ``trajectories`` of its branch (H: final error >= paper.H_MIN)."""

    def __init__(self, lambda_c: float, width: float, trajectories: list[Run], rng: np.random.Generator):
        self.lambda_c, self.w, self.rng = lambda_c, width / WIDTH_PER_W, rng
        self.by_branch = {b: [t for t in trajectories if high(outcome_of(t.final)) == b] for b in (0, 1)}

    def remaining(self, lam: float, x: float | None) -> int:
        return sys.maxsize

    def take(self, lam: float, x: float | None) -> Run:
        h = int(self.rng.random() < 1 / (1 + math.exp(-(lam - self.lambda_c) / self.w)))
        t = self.by_branch[h][self.rng.integers(len(self.by_branch[h]))]
        return Run(lam, x, t.epochs, t.errors, t.seed)


# ---------------------------------------------------------------------------------------------- costs

class FullRuns:
    """Every trial trains to the end: its cost is all its epochs, its outcome its final branch."""
    decides = False

    def __init__(self, total_epochs: int):
        self.total_epochs = total_epochs

    def __call__(self, run: Run) -> tuple[int, str, bool]:
        return self.total_epochs, outcome_of(run.final), False


class EarlyDecisions:
    """A trial stopped at its first evaluation where the classifier decides with ``delta``: (epochs spent,
    decided branch, True), else (all epochs, final outcome, False). Cached per run (a pool's run is
    judged the same way in every repeat).

    Held out: the shipped classifier was fitted on these very pools and trajectories, so a replayed run is
    judged by ``classifiers[run.seed % FOLDS]``, fitted and calibrated without that fold's seeds
    (:func:`held_out_classifiers`): the replay's misclassification is measured on seeds no model saw."""
    decides = True

    def __init__(self, classifiers: dict, delta: float, total_epochs: int, lr_milestones=()):
        self.classifiers, self.delta = classifiers, delta
        self.total_epochs, self.milestones = total_epochs, list(lr_milestones)
        self.cache: dict[tuple, tuple[int, str, bool]] = {}

    def __call__(self, run: Run) -> tuple[int, str, bool]:
        key = (run.epochs, run.errors, run.seed % FOLDS)
        if key not in self.cache:
            self.cache[key] = self._judge(run)
        return self.cache[key]

    def _judge(self, run: Run) -> tuple[int, str, bool]:
        d = self.classifiers[run.seed % FOLDS].first_decision(run.epochs, run.errors, self.total_epochs,
                                                              self.milestones, self.delta)
        return (*d, True) if d is not None else (self.total_epochs, outcome_of(run.final), False)


# ------------------------------------------------------------------------------------------ strategies

@dataclass
class Outcome:
    """Where one repeat of a strategy stopped."""
    reached: bool
    trials: int
    trial_epochs: int
    estimates: dict            # x -> estimate at the stop
    decided: int = 0
    wrong: int = 0             # decided runs whose decided branch is not their final one
    trace: list = None         # after each round / batch: (trial-epochs, the largest SD(λ_c) over x,
                               #   the largest relative half-interval of the width over x)


class PerAxisPosterior:
    """The estimator of every table: :func:`estimate` at each x on its own outcomes."""

    def __init__(self, xs, lo: float, hi: float):
        self.lo, self.hi = lo, hi
        self.lams = {x: [] for x in xs}
        self.highs = {x: [] for x in xs}

    def add(self, lam: float, outcome: str, x) -> None:
        self.lams[x].append(lam)
        self.highs[x].append(high(outcome))

    def estimates(self) -> dict:
        return {x: estimate(self.lams[x], self.highs[x], self.lo, self.hi) for x in self.lams}


class SmoothPosterior:
    """Two dimensions, the second estimator of (d): the 2-D design's own posterior (λ_c(x) smooth across
    x, one width), fed with the outcomes; SD(λ_c) at each x from it."""

    def __init__(self, xs, lo: float, hi: float, axis: str):
        self.design = BoundaryDesign(lo, hi, axis=axis, axis_values=xs)

    def add(self, lam: float, outcome: str, x) -> None:
        self.design.add(lam, outcome, x)

    def estimates(self) -> dict:
        return self.design.summary()


class Tally:
    """The outcomes so far (in the estimator), the costs, and the stopping rule."""

    def __init__(self, estimator, target_sd, width_rel, cost):
        self.estimator, self.target_sd, self.width_rel, self.cost = estimator, target_sd, width_rel, cost
        self.trials = self.trial_epochs = self.decided = self.wrong = 0
        self.trace = []
        self.estimates = {}

    def add(self, run: Run) -> str:
        epochs, outcome, decided = self.cost(run)
        self.estimator.add(run.lam, outcome, run.x)
        self.trials += 1
        self.trial_epochs += epochs
        self.decided += decided
        self.wrong += decided and high(outcome) != high(outcome_of(run.final))
        self.last_cost = epochs / self.cost.total_epochs
        return outcome

    def done(self) -> bool:
        self.estimates = self.estimator.estimates()
        self.trace.append((self.trial_epochs, max(e["lambda_c_sd"] for e in self.estimates.values()),
                           max(width_spread(e) for e in self.estimates.values())))
        return all(reached(e, self.target_sd, self.width_rel) for e in self.estimates.values())

    def result(self, ok: bool) -> Outcome:
        return Outcome(ok, self.trials, self.trial_epochs, self.estimates, self.decided, self.wrong, self.trace)


def grid(source, levels, xs, tally: Tally, max_rounds: int) -> Outcome:
    """One seed more at every (λ, x) of the grid per round until the rule holds or the pool is used up."""
    for _ in range(max_rounds):
        for x in xs:
            for lam in levels:
                if source.remaining(lam, x) <= 0:
                    return tally.result(False)
                tally.add(source.take(lam, x))
        if tally.done():
            return tally.result(True)
    return tally.result(False)


def adaptive(source, design, tally: Tally, batch: int, max_trials: int, cost_aware: bool = True) -> Outcome:
    """Batches of ``batch`` proposals (each informative given the others), outcomes after each batch; the
    design told each trial's cost (its fraction of the epochs: below 1 when decided early) unless not
    ``cost_aware``."""
    while tally.trials < max_trials:
        points = design.propose(min(batch, max_trials - tally.trials),
                                exclude=lambda lam, x: source.remaining(lam, x) <= 0)
        runs = [r for r in (source.take(lam, x) for lam, x in points) if r is not None]
        if not runs:
            break
        for r in runs:
            outcome = tally.add(r)
            design.add(r.lam, outcome, r.x, cost=tally.last_cost if cost_aware else 1.0)
        if tally.done():
            return tally.result(True)
    return tally.result(False)


# ------------------------------------------------------------------------------------------ comparing

@dataclass
class Setting:
    """One part's question: where the runs come from and what the answer is compared with."""
    name: str
    source: object                 # rng -> a source (ReplayPool or SyntheticSource)
    levels: list                   # the grid's λ
    xs: list                       # the second axis' values, or [None]
    axis: str | None               # the second axis ("eta") or None
    lo: float
    hi: float
    total_epochs: int
    reference: dict                # x -> the all-runs (or true) estimate
    seconds: float                 # per trial-epoch
    candidates: list | None        # λ the design may propose (a replay: the pool's levels)
    max_trials: int
    width_rel: float | None
    decide: object = None          # EarlyDecisions or None


def new_design(s: Setting, seed: int, target_sd: float):
    """The design as ``--target-sd`` runs it live: aimed at the targets (a part without a width target
    gives it a loose one, so that λ_c's variance drives the proposals)."""
    d = BoundaryDesign(s.lo, s.hi, axis=s.axis, axis_values=s.xs if s.axis else (), candidates=s.candidates,
                       seed=seed)
    d.aim(target_sd, s.width_rel if s.width_rel is not None else LOOSE_WIDTH_REL)
    return d


def information_bound(width: float, target_sd: float, width_rel: float | None) -> float:
    """The fewest trials any design needs for the answer when λ_c and the width are known beforehand:
    half the trials at λ_c ± z s, the best z (Fisher information of (λ_c, log s); the width's interval
    taken as ±1.96 SD of log s against log(1 + width_rel))."""
    s = width / WIDTH_PER_W
    z = np.linspace(0.05, 5, 1000)
    q = 1 / (1 + np.exp(-z)) * (1 / (1 + np.exp(z)))
    need = s ** 2 / (q * target_sd ** 2)
    if width_rel is not None:
        need = np.maximum(need, (1.96 / math.log(1 + width_rel)) ** 2 / (q * z ** 2))
    return float(need.min())


def trials_needed(o: Outcome, target_sd: float, width_rel: float | None) -> tuple[float, bool]:
    """Trials to the answer: measured, or (not reached) extrapolated as 1/√n from where it stopped."""
    if o.reached:
        return o.trials, False
    f = 1.0
    for e in o.estimates.values():
        f = max(f, (e["lambda_c_sd"] / target_sd) ** 2)
        if width_rel is not None:
            f = max(f, (width_spread(e) / width_rel) ** 2)
    return o.trials * f, True


def right(o: Outcome, s: Setting, target_sd: float) -> bool:
    """λ_c within 2 x target_sd of the reference at every x, and the width within ±width_rel of it."""
    for x, e in o.estimates.items():
        ref = s.reference[x]
        if abs(e["lambda_c"] - ref["lambda_c"]) > 2 * target_sd:
            return False
        if s.width_rel is not None and abs(e["width"] / ref["width"] - 1) > s.width_rel:
            return False
    return True


def compare(s: Setting, a, smooth: bool = False) -> tuple[pd.DataFrame, dict]:
    """Every strategy over ``a.repeats`` repeats: a row each (medians) and the repeats' traces; the
    estimator :class:`PerAxisPosterior`, or with ``smooth`` (two dimensions) :class:`SmoothPosterior`."""
    strategies = [("grid", None), ("adaptive", None)] + ([("adaptive+early", s.decide)] if s.decide else [])
    rows, traces = [], {}
    for name, decide in strategies:
        outs = []
        for k in range(a.repeats):
            rng = np.random.default_rng(1000 + k)
            estimator = SmoothPosterior(s.xs, s.lo, s.hi, s.axis) if smooth else PerAxisPosterior(s.xs, s.lo, s.hi)
            tally = Tally(estimator, a.target_sd, s.width_rel, decide or FullRuns(s.total_epochs))
            src = s.source(rng)
            if name == "grid":
                outs.append(grid(src, s.levels, s.xs, tally, max_rounds=s.max_trials // (len(s.levels) * len(s.xs))))
            else:
                outs.append(adaptive(src, new_design(s, k, a.target_sd), tally, a.batch, s.max_trials))
        need = [trials_needed(o, a.target_sd, s.width_rel) for o in outs]
        per_trial = [o.trial_epochs / o.trials for o in outs]
        trials = float(np.median([n for n, _ in need]))
        epochs = float(np.median([n * p for (n, _), p in zip(need, per_trial)]))
        n_reached = sum(o.reached for o in outs)
        mark = "" if n_reached * 2 > len(outs) else "~"
        decided = sum(o.decided for o in outs)
        sd_only = [next((p[0] for p in o.trace if p[1] <= a.target_sd), math.nan) for o in outs]
        rows.append({"strategy": name, "reached": f"{n_reached}/{len(outs)}", "trials": f"{mark}{trials:.0f}",
                     "trial_epochs": f"{mark}{epochs:.0f}", "wall": _duration(epochs * s.seconds),
                     "right": f"{sum(right(o, s, a.target_sd) for o in outs if o.reached)}/{n_reached}",
                     "decided": f"{decided / max(1, sum(o.trials for o in outs)):.0%}",
                     "wrong": f"{sum(o.wrong for o in outs)}/{decided}" if decided else "-",
                     "sd_only_epochs": f"{np.nanmedian(sd_only):.0f}", "_trials": trials, "_epochs": epochs,
                     "_sd_only": float(np.nanmedian(sd_only))})
        traces[name] = [o.trace for o in outs]
    bound = sum(information_bound(r["width"], a.target_sd, s.width_rel) for r in s.reference.values())
    rows.append({"strategy": "bound", "trials": f"{bound:.0f}", "trial_epochs": f"{bound * s.total_epochs:.0f}",
                 "wall": _duration(bound * s.total_epochs * s.seconds), "_trials": bound,
                 "_epochs": bound * s.total_epochs})
    t = pd.DataFrame(rows)
    t["trials_vs_grid"] = (t["_trials"].iloc[0] / t["_trials"]).map(lambda v: f"{v:.2f}")
    t["epochs_vs_grid"] = (t["_epochs"].iloc[0] / t["_epochs"]).map(lambda v: f"{v:.2f}")
    t["sd_only_vs_grid"] = (t["_sd_only"].iloc[0] / t["_sd_only"]).map(lambda v: "-" if v != v else f"{v:.2f}")
    return t, traces


def _duration(sec: float) -> str:
    return f"{sec / 3600:.1f} h" if sec >= 3600 else f"{sec / 60:.1f} min" if sec >= 60 else f"{sec:.1f} s"


def show(title: str, t: pd.DataFrame) -> None:
    print(f"\n{title}")
    print(t[[c for c in t.columns if not c.startswith("_")]].fillna("-").to_string(index=False))


# ---------------------------------------------------------------------------------------------- parts

def early(dataset: str, delta: float, total_epochs: int, lr_milestones=()) -> EarlyDecisions | None:
    """Decisions by the calibrated branch classifier of ``dataset`` at ``delta``, or None (said) when it
    has none or cannot honour ``delta``."""
    try:
        check_delta(delta, dataset)
    except ConfigError as e:
        print(f"(adaptive+early skipped: {e})")
        return None
    return EarlyDecisions(held_out_classifiers(BranchClassifier.load(dataset).dataset), delta, total_epochs,
                          lr_milestones)


def held_out_classifiers(family: str) -> dict[int, BranchClassifier]:
    """Per seed fold k, the branch classifier of data set ``family`` fitted and calibrated (nested, as
    ``python -m dgl_ray.early fit``) on the runs of every other fold: {k: classifier}."""
    runs = digits_runs() if family == "digits" else cifar_runs()
    return {k: BranchClassifier(family, fit_family([r for r in runs if r["seed"] % FOLDS != k]))
            for k in range(FOLDS)}


def with_replay_pool(runs: list[Run], dense: Path | None, axis: str | None = None) -> tuple[list[Run], str]:
    """``runs`` and, where ``dense`` exists, its runs (λ every 0.01 across the band, seeds no classifier
    saw): the design's candidates are every level of both, the grid keeps its own levels; and a phrase
    that says which."""
    if dense is None or not dense.exists():
        return runs, "the grid's levels only"
    more = read_pool(dense, axis)
    return runs + more, f"+ {len(more)} runs of {dense.name} (λ step 0.01 in the band)"


def digits_s1(a, path: Path = POOLS / "s1.parquet", dense: Path | None = REPLAY / "s1dense.parquet") -> Setting:
    grid_runs = read_pool(path)
    levels = sorted({r.lam for r in grid_runs})
    runs, more = with_replay_pool(grid_runs, dense)
    lo, hi = levels[0], levels[-1]
    runs = [r for r in runs if lo <= r.lam <= hi]
    ref = estimate([r.lam for r in runs], [high(outcome_of(r.final)) for r in runs], lo, hi)
    return Setting(f"(a) replay on the digits S1 pool ({len(grid_runs)} runs {more})",
                   lambda rng: ReplayPool(runs, rng), levels, [None], None, lo, hi,
                   max(len(r.epochs) for r in runs), {None: ref}, seconds_per_trial_epoch(path),
                   sorted({r.lam for r in runs}), len(runs), a.width_rel,
                   early("digits", a.delta, max(r.epochs[-1] for r in runs)))


def cifar_synthetic(a) -> Setting:
    s1 = critical_point(load_legacy(ARCHIVE / "S1")).iloc[0]
    lambda_c, width = float(s1["lambda_c_logistic"]), float(s1["logistic_width"])
    with warnings.catch_warnings():       # the S2 CSVs duplicate its JSONs, which hold the trajectories
        warnings.simplefilter("ignore", SkippedFileWarning)
        s2 = load_legacy(ARCHIVE / "S2").sort_values("epoch")
    trajectories = [Run(0.0, None, tuple(int(e) for e in g["epoch"]), tuple(float(e) for e in g["test_error"]),
                        int(g["seed"].iloc[0]))
                    for _, g in s2.groupby("run") if g["test_error"].notna().all()]
    levels = [round(0.42 + 0.02 * i, 2) for i in range(8)]          # the paper's S1 grid
    lo, hi = levels[0], levels[-1]
    return Setting(f"(b) synthetic, the CIFAR S1 fit (λ_c {lambda_c:.4f}, width {width:.4f}; trajectories from S2)",
                   lambda rng: SyntheticSource(lambda_c, width, trajectories, rng), levels, [None], None, lo, hi, 100,
                   {None: {"lambda_c": lambda_c, "width": width}}, CIFAR_SECONDS_PER_TRIAL_EPOCH, None,
                   a.max_synthetic, a.width_rel, early("cifar10", a.delta, 100, [50, 75]))


def digits_eta(a, path: Path = POOLS / "eta.parquet", dense: Path | None = REPLAY / "etadense.parquet") -> Setting:
    grid_runs = read_pool(path, axis="eta")
    levels = sorted({r.lam for r in grid_runs})
    xs = sorted({r.x for r in grid_runs})
    runs, more = with_replay_pool(grid_runs, dense, axis="eta")
    lo, hi = levels[0], levels[-1]
    runs = [r for r in runs if lo <= r.lam <= hi and r.x in xs]
    ref = {x: estimate([r.lam for r in runs if r.x == x], [high(outcome_of(r.final)) for r in runs if r.x == x], lo, hi)
           for x in xs}
    return Setting(f"(d) two dimensions: the digits λ x η pool ({len(xs)} η x {len(levels)} λ, {len(grid_runs)} runs {more})",
                   lambda rng: ReplayPool(runs, rng), levels, xs, "eta", lo, hi, max(len(r.epochs) for r in runs),
                   ref, seconds_per_trial_epoch(path), sorted({r.lam for r in runs}), len(runs), None,
                   early("digits", a.delta, max(r.epochs[-1] for r in runs)))


# ---------------------------------------------------------------------------------------------- live

def sweep(storage: str, name: str, args: list[str]) -> tuple[float, pd.DataFrame]:
    """One coexistence sweep on the digits default as its own command (Ray start-up included):
    (wall seconds, its rows)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--storage", storage, "--name", name,
           "--progress-interval", "600", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=storage, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return wall, load_experiment(os.path.join(storage, name))


def grid_answer(df: pd.DataFrame, s0: int, n_max: int, lo: float, hi: float, a) -> tuple[float, int | None, float]:
    """The live grid's trial-epochs to the answer, counted as (a) counts a grid: its first n seeds at every λ,
    n = 1, 2, ..., until their outcomes meet the rule; not met by all ``n_max`` seeds, extrapolated as
    :func:`trials_needed` does (× the larger of (SD / target)² and (spread / width-rel)²). Returns
    (trial-epochs, n or None when extrapolated, the extrapolation factor)."""
    o = outcome_rows(df)
    length = df.groupby("run")["epoch"].max()
    for n in range(1, n_max + 1):
        sub = o[o["seed"] < s0 + n]
        est = estimate(sub["lambda"], [high(str(v)) for v in sub["outcome"]], lo, hi)
        if reached(est, a.target_sd, a.width_rel):
            return float(length[length.index.isin(set(sub["run"]))].sum()), n, 1.0
    f = max(1.0, (est["lambda_c_sd"] / a.target_sd) ** 2, (width_spread(est) / a.width_rel) ** 2)
    return float(length.sum()) * f, None, f


def live(a) -> pd.DataFrame:
    """(c): the grid sweep vs the adaptive sweep to --target-sd (and with --decide-early), each its own
    command on ``a.num_cpus`` CPUs; trial-epochs = the rows' evaluations; the answer from the rows'
    outcomes (decided runs by their decided branch) with :func:`estimate`."""
    lams = a.live_lambdas
    levels = parse_range(lams, "--live-lambdas")
    lo, hi = min(levels), max(levels)
    common = ["--lambdas", lams, "--num-cpus", str(a.num_cpus)] + (["--epochs", str(a.live_epochs)] if a.live_epochs else [])
    # seeds from --live-seed0 on: the shipped digits classifier was fitted on seeds 0-49 of the same λ, so the
    # live decisions are made on seeds it never saw (the adaptive search takes fresh seeds from the first on)
    s0 = a.live_seed0
    first = ["--seeds", f"{s0}:{s0}:1"]
    plans = [("grid", ["--seeds", f"{s0}:{s0 + a.live_n - 1}:1"]),
             ("adaptive", first + ["--adaptive", str(a.live_budget), "--target-sd", str(a.target_sd)]),
             ("adaptive+early", first + ["--adaptive", str(a.live_budget), "--target-sd", str(a.target_sd),
                                         "--decide-early", str(a.delta)])]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-time-to-answer-") as tmp:
        for name, extra in plans:
            wall, df = sweep(tmp, name.replace("+", "-"), common + extra)
            o = outcome_rows(df)
            est = estimate(o["lambda"], [high(str(v)) for v in o["outcome"]], lo, hi)
            epochs = int(df.groupby("run")["epoch"].max().sum())
            # the adaptive sweeps stop at their answer; the grid runs all its seeds, and its answer comes
            # from its first n seeds per λ (as in (a)), so the grid is not charged for seeds past its answer
            answer, note = float(epochs), ""
            if name == "grid":
                answer, n, f = grid_answer(df, s0, a.live_n, lo, hi, a)
                note = (f"its first {n} of {a.live_n} seeds per λ" if n else
                        f"~ not reached with {a.live_n} seeds per λ: ×{f:.2f} extrapolated")
            rows.append({"strategy": name, "trials": df["run"].nunique(), "decided": int(o["decided"].sum()),
                         "trial_epochs": epochs, "wall_s": round(wall, 1), "lambda_c": round(est["lambda_c"], 4),
                         "sd": round(est["lambda_c_sd"], 4), "width": round(est["width"], 4),
                         "reached": reached(est, a.target_sd, a.width_rel), "answer_epochs": round(answer),
                         "answer": note or ("at its target" if reached(est, a.target_sd, a.width_rel) else "~ budget spent")})
    t = pd.DataFrame(rows)
    t["epochs_vs_grid"] = (t["answer_epochs"].iloc[0] / t["answer_epochs"]).map(lambda v: f"{v:.2f}")
    # the grid's wall to its answer: its measured wall scaled by the share of its trial-epochs the answer took
    grid_wall = t["wall_s"].iloc[0] * t["answer_epochs"].iloc[0] / t["trial_epochs"].iloc[0]
    t["wall_vs_grid"] = (grid_wall / t["wall_s"]).map(lambda v: f"{v:.2f}")
    return t


# ---------------------------------------------------------------------------------------------- figure

def sd_curves(traces: dict, path: Path, title: str, target_sd: float, width_rel: float) -> None:
    """SD(λ_c) and the width's relative half-interval against trial-epochs per strategy: the median over
    the repeats still running of each repeat's latest value (a repeat ends at its answer)."""
    import matplotlib                      # only for --figure: the tables need no plotting library
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    top = max(t[-1][0] for reps in traces.values() for t in reps if t)
    xs = np.geomspace(100, top, 200)
    for name, reps in traces.items():
        for ax, k in zip(axes, (1, 2)):
            curves = []
            for t in reps:
                e, v = np.array([p[0] for p in t]), np.array([p[k] for p in t])
                i = np.searchsorted(e, xs, side="right") - 1
                curves.append(np.where((i >= 0) & (xs <= e[-1]), v[np.clip(i, 0, None)], np.nan))
            curves = np.array(curves)
            live = np.isfinite(curves).any(axis=0)
            ax.plot(xs[live], np.nanmedian(curves[:, live], axis=0), label=name)
    for ax, line, label in zip(axes, (target_sd, width_rel), (f"SD(λ_c) target {target_sd}",
                                                            f"width ±{width_rel:.0%}")):
        ax.axhline(line, color="grey", ls=":", label=label)
        ax.set(xscale="log", yscale="log", xlabel="trial-epochs")
        ax.legend(fontsize=8)
    axes[0].set(ylabel="posterior SD(λ_c)", title=f"{title}: λ_c")
    axes[1].set(ylabel="width 95% interval / width − 1 (larger side)", title=f"{title}: coexistence width")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    print(f"figure: {path}")


# ---------------------------------------------------------------------------------------------- main

def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} logical CPUs"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="repeats per strategy (medians)")
    ap.add_argument("--batch", type=int, default=25, help="adaptive: trials proposed per batch (a population)")
    ap.add_argument("--target-sd", type=float, default=0.005, help="the answer: SD(λ_c) at most this")
    ap.add_argument("--width-rel", type=float, default=0.25, help="the answer: the width's 95%% interval within ±this")
    ap.add_argument("--delta", type=float, default=0.05, help="early decisions: stop at P(branch) >= 1 - δ")
    ap.add_argument("--parts", default="abcd", help="which parts to run (letters of a, b, c, d)")
    ap.add_argument("--skip-live", action="store_true", help="leave out (c), the live sweeps through Ray Tune")
    ap.add_argument("--max-synthetic", type=int, default=3200, help="(b): the most trials a strategy may use")
    ap.add_argument("--live-lambdas", default="0.36:0.56:0.02", help="(c): the grid's λ and the adaptive range")
    ap.add_argument("--live-n", type=int, default=40, help="(c): the grid's seeds per λ")
    ap.add_argument("--live-budget", type=int, default=550, help="(c): the adaptive sweeps' most trials")
    ap.add_argument("--live-seed0", type=int, default=300,
                    help="(c): the first seed (the shipped digits classifier saw seeds 0-49: the default is unseen)")
    ap.add_argument("--live-epochs", type=int, default=None, help="(c): epochs per trial (default: digits' 30)")
    ap.add_argument("--num-cpus", type=int, default=2, help="(c): CPUs of each sweep's Ray instance")
    ap.add_argument("--figure", type=Path, default=None, help="write (a)'s precision vs trial-epochs PNG here")
    ap.add_argument("--s1", type=Path, default=POOLS / "s1.parquet", help="(a)'s pool")
    ap.add_argument("--eta", type=Path, default=POOLS / "eta.parquet", help="(d)'s pool")
    ap.add_argument("--replay", type=Path, default=REPLAY,
                    help="folder of the replay-only pools s1dense/etadense.parquet (λ every 0.01 in the band)")
    ap.add_argument("--grid-levels-only", action="store_true",
                    help="(a), (d): replay the grid's pools alone (the design held to the grid's levels)")
    a = ap.parse_args(argv)
    bad = set(a.parts) - set("abcd")
    if bad or a.repeats < 1 or a.batch < 1 or not 0 < a.target_sd < 1 or not 0 < a.width_rel < 1:
        print(f"error: --parts {a.parts!r} --repeats {a.repeats} --batch {a.batch} --target-sd {a.target_sd} "
              f"--width-rel {a.width_rel}: parts are letters of abcd, counts >= 1, SD and width-rel in (0, 1)",
              file=sys.stderr)
        return 2
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {cpu_model()} | load average "
          f"{', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"# answer: SD(λ_c) <= {a.target_sd} and the width's 95% interval within ±{a.width_rel:.0%}; "
          f"{a.repeats} repeats, batches of {a.batch}, δ {a.delta}")
    ratio = math.nan
    if "a" in a.parts:
        s = digits_s1(a, a.s1, None if a.grid_levels_only else a.replay / "s1dense.parquet")
        t, traces = compare(s, a)
        show(f"{s.name}: all {s.max_trials} runs give λ_c {s.reference[None]['lambda_c']:.4f}, "
             f"width {s.reference[None]['width']:.4f}; {1000 * s.seconds:.1f} ms per trial-epoch on one CPU", t)
        best = t[t["strategy"].isin(["adaptive", "adaptive+early"])]["_epochs"].min()
        ratio = t["_epochs"].iloc[0] / best
        if a.figure:
            sd_curves(traces, a.figure, "digits S1 replay", a.target_sd, a.width_rel)
    if "b" in a.parts:
        s = cifar_synthetic(a)
        show(s.name + f"; wall at {s.seconds:.2f} A100-s per trial-epoch", compare(s, a)[0])
    if "c" in a.parts and not a.skip_live:
        show(f"(c) live on digits through Ray Tune ({a.num_cpus} CPUs; grid {a.live_lambdas} x {a.live_n} seeds, "
             f"adaptive budget {a.live_budget})", live(a))
    if "d" in a.parts:
        if not a.eta.exists():
            print(f"\n(d) skipped: no {a.eta}")
        else:
            s = digits_eta(a, a.eta, None if a.grid_levels_only else a.replay / "etadense.parquet")
            refs = "; ".join(f"η {x}: {e['lambda_c']:.3f}" for x, e in s.reference.items())
            show(f"{s.name}: all-runs λ_c {refs}; per-η posterior", compare(s, a)[0])
            show(f"{s.name}: the smooth λ_c(η) posterior (the 2-D design's model) for every strategy",
                 compare(s, a, smooth=True)[0])
    print(f"trial-epochs vs grid: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
