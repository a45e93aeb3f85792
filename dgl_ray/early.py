"""Calibrated early decisions: the final branch of a run, told from its trajectory so far.

A run far from λ_c is decided long before it ends: :class:`BranchClassifier` gives
P(final error >= ``paper.H_MIN``) from the evaluations so far, and :meth:`BranchClassifier.decide` names
the branch once that probability (or its complement) reaches 1 − δ *at an evaluation point where the
held-out misclassification of such decisions was measured <= δ*. Rank-based stopping (ASHA, median
stopping) would stop high-error runs selectively and bias P(H | λ); these decisions rest on a calibrated
probability of the final branch instead, and the report of ``python -m dgl_ray.early report`` shows the
P(H | λ) of decided + final outcomes beside the all-final one on held-out seeds.

The model (one per data set family, :data:`FAMILY_OF`): a ridge logistic regression on features in
relative time (fraction of the run done, last error, mean error over the last tenth of the run, lowest
error so far, recent slope, whether the first LR milestone has passed, and their products with time and
with that phase; over longer windows, the last fifth, third and half of the run, the mean error, and over
the third its least-squares slope, spread and fraction of evaluations >= H_MIN). Decisions are allowed per tenth of the run (:data:`BINS` bins of relative time) and per
δ of :data:`DELTAS`: a bin is allowed when, on held-out seeds, the upper bound (Wilson, one-sided 90%)
of the misclassification of the decisions first made there, and that of all decisions made so far,
stay <= δ. A δ between two of :data:`DELTAS` uses the calibration of the largest one below it.

Cross-validation is grouped by seed (all of a seed's runs are held out together; fold = seed mod
:data:`FOLDS`) and nested: the bins of each outer fold are chosen on the inner held-out predictions of
the other folds, so the misclassification stored per δ is measured on seeds that chose nothing.

The coefficients, the allowed bins, the data fitted on, the CV scheme and the measured misclassification
per δ ship as ``dgl_ray/early_models.json``; ``python -m dgl_ray.early fit`` refits it from the
repository's data (``tests/data``) and ``python -m dgl_ray.early report`` prints the stored table.

numpy only at import (the config layer validates ``--decide-early`` with :func:`check_delta`).
"""
from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import ConfigError
from .paper import H_MIN

MODELS_FILE = Path(__file__).with_name("early_models.json")
DELTAS = (0.01, 0.02, 0.05, 0.1)     # the δ levels calibrated; others use the largest one below
BINS = 10                            # decisions are allowed (or not) per tenth of the run
FOLDS = 5                            # grouped CV: fold = seed mod FOLDS
RIDGE = 1e-2                         # L2 penalty on standardised coefficients (the intercept is free)
WILSON_Z = 1.2816                    # one-sided 90% upper bound on a misclassification rate
# the data set family whose calibration a data set uses. CIFAR-10's model (the paper's S2 trajectories)
# serves synthetic-cifar too (CIFAR-shaped smoke data: same schedule, same error scale); cifar100 has
# no model: its errors live on another scale, where H_MIN does not split the same branches.
FAMILY_OF = {"digits": "digits", "cifar10": "cifar10", "synthetic-cifar": "cifar10"}
FEATURES = ("frac_done", "last", "recent_mean", "min_so_far", "slope", "after_milestone",
            "last_x_frac", "last_x_after", "frac_x_after",
            # the level a noisy trajectory settles on, read over longer windows (a fifth, a third, half the run)
            "mean_w20", "mean_w35", "mean_w50", "slope_w35", "above_w35", "sd_w35",
            "mean_w20_x_frac", "mean_w35_x_frac", "mean_w50_x_frac", "slope_w35_x_left")
WINDOWS = (0.2, 0.35, 0.5)           # the longer windows, as fractions of the run


def features(epochs: Sequence[int], errors: Sequence[float], total_epochs: int,
             lr_milestones: Sequence[int] = ()) -> np.ndarray:
    """The feature vector (:data:`FEATURES`) of a trajectory at its last evaluation.

    Time is relative (a fraction of ``total_epochs``) so that runs of other lengths or evaluation
    intervals read alike; "recent" is the last tenth of the run (one evaluation when they are sparser).
    The longer windows (:data:`WINDOWS`) read the level a noisy trajectory drifts to (digits' low-error
    runs wander across H_MIN for most of a run): their means, and over the middle one the least-squares
    slope, the fraction of evaluations >= H_MIN and the spread."""
    ep = np.asarray(epochs, dtype=float)
    err = np.asarray(errors, dtype=float)
    now = ep[-1]
    frac = now / total_epochs
    window = now - total_epochs / BINS
    recent = err[ep >= window] if (ep >= window).sum() > 1 else err[-1:]
    before = ep < now - 1e-9
    if before.any():
        # the slope per unit of relative time, against the evaluation a tenth of the run back (or the nearest)
        j = int(np.argmin(np.abs(ep[before] - window)))
        slope = (err[-1] - err[before][j]) / ((now - ep[before][j]) / total_epochs)
    else:
        slope = 0.0
    after = float(bool(lr_milestones) and now >= min(lr_milestones))
    means = [err[ep >= now - w * total_epochs].mean() for w in WINDOWS]
    mid = ep >= now - WINDOWS[1] * total_epochs
    t, e = ep[mid] / total_epochs, err[mid]
    slope_mid = float(np.polyfit(t, e, 1)[0]) if mid.sum() >= 3 else 0.0
    return np.array([frac, err[-1], recent.mean(), err.min(), slope, after,
                     err[-1] * frac, err[-1] * after, frac * after,
                     *means, slope_mid, (e >= H_MIN).mean(), e.std(),
                     *(m * frac for m in means), slope_mid * (1 - frac)])


def time_bin(epoch: float, total_epochs: int) -> int | None:
    """The tenth of the run an evaluation falls in; None at the end (a final error needs no decision)."""
    frac = epoch / total_epochs
    return None if frac >= 1.0 else min(int(frac * BINS), BINS - 1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def fit_logistic(X: np.ndarray, y: np.ndarray) -> dict:
    """A ridge logistic regression by Newton's method on standardised features: {"mean", "scale", "coef"}
    (coef[0] the intercept). Features that never vary (no milestone on digits) get scale 1 and a zero
    coefficient from the penalty."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-12] = 1.0
    Z = np.column_stack([np.ones(len(X)), (X - mean) / scale])
    w = np.zeros(Z.shape[1])
    penalty = np.full(Z.shape[1], RIDGE * len(X))
    penalty[0] = 0.0
    for _ in range(100):
        p = _sigmoid(Z @ w)
        grad = Z.T @ (p - y) + penalty * w
        hess = (Z * (p * (1 - p))[:, None]).T @ Z + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return {"mean": mean.tolist(), "scale": scale.tolist(), "coef": w.tolist()}


def predict(model: dict, X: np.ndarray) -> np.ndarray:
    """P(H) of each row of features under a fitted :func:`fit_logistic` model."""
    Z = (np.atleast_2d(X) - np.asarray(model["mean"])) / np.asarray(model["scale"])
    coef = np.asarray(model["coef"])
    return _sigmoid(coef[0] + Z @ coef[1:])


def wilson_upper(wrong: int, n: int, z: float = WILSON_Z) -> float:
    """The one-sided Wilson upper bound of a rate observed as ``wrong`` of ``n`` (1 when n is 0)."""
    if n == 0:
        return 1.0
    p = wrong / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z * z / n))


def _branch(p_high: float, delta: float) -> tuple[str, float] | None:
    if p_high >= 1 - delta:
        return "H", p_high
    if 1 - p_high >= 1 - delta:
        return "not_H", 1 - p_high
    return None


def first_decisions(P: np.ndarray, B: np.ndarray, delta: float, allowed) -> tuple[np.ndarray, np.ndarray]:
    """Each run's first decision under the policy (the first evaluation in an allowed bin with P(branch)
    >= 1 − δ). ``P`` (runs × evaluations) holds P(H), ``B`` the bins (-1: padding or the last epoch).
    Returns (branch: 1 H, 0 not_H, -1 none; the index of the deciding evaluation, -1 for none)."""
    sure = (P >= 1 - delta) | (P <= delta)
    hit = np.isin(B, list(allowed)) & sure & (B >= 0)
    any_hit = hit.any(axis=1)
    at = np.where(any_hit, hit.argmax(axis=1), -1)
    p_at = np.take_along_axis(P, np.maximum(at, 0)[:, None], axis=1)[:, 0]
    return np.where(any_hit, (p_at >= 0.5).astype(int), -1), at


def choose_bins(P: np.ndarray, B: np.ndarray, y: np.ndarray, delta: float) -> list[int]:
    """The bins where decisions at level δ are allowed, chosen on held-out predictions, earliest first:
    a bin joins when the Wilson upper bound of the misclassification of the decisions first made there,
    and that of all decisions so far, stay <= δ."""
    allowed: set[int] = set()
    for b in range(BINS):
        branch, at = first_decisions(P, B, delta, allowed | {b})
        decided = branch >= 0
        here = decided & (np.take_along_axis(B, np.maximum(at, 0)[:, None], axis=1)[:, 0] == b)
        if not here.any():
            continue
        wrong = branch != y
        if (wilson_upper(int((wrong & here).sum()), int(here.sum())) <= delta
                and wilson_upper(int((wrong & decided).sum()), int(decided.sum())) <= delta):
            allowed.add(b)
    return sorted(allowed)


# --------------------------------------------------------------------------------------------------
# The classifier
# --------------------------------------------------------------------------------------------------

class BranchClassifier:
    """P(final error >= H_MIN) from a trajectory so far, and calibrated decisions (module docstring)."""

    def __init__(self, dataset: str, stored: dict):
        self.dataset = dataset
        self._model = stored["model"]
        self._calibration = {float(k): v for k, v in stored["calibration"].items()}
        passed = [d for d, c in self._calibration.items() if c["passed"]]
        self.min_delta = min(passed) if passed else math.inf

    @classmethod
    def load(cls, dataset: str) -> "BranchClassifier":
        family = FAMILY_OF.get(dataset)
        stored = _stored().get(family) if family else None
        if stored is None:
            have = ", ".join(d for d, f in FAMILY_OF.items() if f in _stored())
            raise ConfigError(f"no calibrated branch classifier for dataset {dataset!r} (have: {have})")
        return cls(family, stored)

    def p_high(self, epochs: Sequence[int], errors: Sequence[float], total_epochs: int,
               lr_milestones: Sequence[int] = ()) -> float:
        """P(final error >= H_MIN) from the evaluations so far (epochs 1-based, errors in [0, 1])."""
        return float(predict(self._model, features(epochs, errors, total_epochs, lr_milestones))[0])

    def level(self, delta: float) -> float | None:
        """The calibrated δ used for ``delta``: the largest one <= ``delta`` that passed its check."""
        usable = [d for d, c in self._calibration.items() if c["passed"] and d <= delta + 1e-12]
        return max(usable) if usable else None

    def allowed_bins(self, delta: float) -> list[int]:
        """The tenths of a run (0-9) where decisions at ``delta`` are allowed ([] when none is calibrated)."""
        level = self.level(delta)
        return [] if level is None else list(self._calibration[level]["bins"])

    def decide(self, epochs: Sequence[int], errors: Sequence[float], total_epochs: int,
               lr_milestones: Sequence[int], delta: float) -> tuple[str, float] | None:
        """("H", p) or ("not_H", p) once p >= 1 − δ at a point where the calibration allows a decision;
        else None (never at the run's last epoch: its final error is the answer)."""
        b = time_bin(epochs[-1], total_epochs) if len(epochs) else None
        if b is None or b not in self.allowed_bins(delta):
            return None
        return _branch(self.p_high(epochs, errors, total_epochs, lr_milestones), self.level(delta))

    def first_decision(self, epochs: Sequence[int], errors: Sequence[float], total_epochs: int,
                       lr_milestones: Sequence[int], delta: float) -> tuple[int, str] | None:
        """(epoch, branch) of the first evaluation of a whole trajectory at which :meth:`decide` decides,
        as a live ``--decide-early`` member would stop there; None when it never does (the last evaluation
        is the run's end: nothing to decide)."""
        for i in range(1, len(epochs)):
            d = self.decide(epochs[:i], errors[:i], total_epochs, lr_milestones, delta)
            if d is not None:
                return int(epochs[i - 1]), d[0]
        return None


@functools.lru_cache(maxsize=1)
def _stored() -> dict:
    """The fitted models by data set family (read once per process)."""
    return json.loads(MODELS_FILE.read_text())["families"]


def check_delta(delta: float, dataset: str) -> None:
    """Raise :class:`ConfigError` (one line: the value, the allowed range, the data set) unless
    ``--decide-early delta`` can be honoured for ``dataset``."""
    clf = BranchClassifier.load(dataset)
    ok = isinstance(delta, (int, float)) and not isinstance(delta, bool) and clf.min_delta <= delta < 0.5
    if not ok:
        raise ConfigError(f"--decide-early {delta!r}: must be a number in [{clf.min_delta:g}, 0.5) for dataset "
                          f"{dataset!r} (the smallest δ whose held-out misclassification was measured <= δ)")


# --------------------------------------------------------------------------------------------------
# The fit: data, nested grouped cross-validation, the stored calibration
# --------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
CIFAR_S2 = REPO / "tests" / "data" / "paper-results" / "S2"
DIGITS_POOLS = REPO / "tests" / "data" / "digits-pools"
# PROTOCOLS.md: S2a–f at η 0.4, S2g at η 0.8; 100 epochs, LR milestones 50 and 75
_S2_ETA = {"S2g": 0.8}
_CIFAR_SCHEDULE = (100, (50, 75))
# R1 ladders change λ every step and Ta-prep keeps final errors only: neither is a fixed-λ trajectory.
NOT_FITTED = {"R1": "λ changes at every step (a ladder, not a fixed-λ run)",
              "Ta": "final errors only (no trajectory)"}


def cifar_runs(folder: Path = CIFAR_S2) -> list[dict]:
    """The paper's S2 runs (CIFAR-10, test error every 10 epochs of 100) as fit records."""
    total, milestones = _CIFAR_SCHEDULE
    runs = []
    for f in sorted(folder.glob("S2*_results.json")):
        eta = _S2_ETA.get(f.name.split("_")[0], 0.4)
        for r in json.loads(f.read_text()):
            hist = sorted((h["epoch"], h["error"]) for h in r["error_history"])
            if hist[-1][0] != total or not np.isfinite(r["final_error"]):
                continue    # unfinished or diverged: no final branch to learn from
            runs.append({"source": f.name, "seed": int(r["seed"]), "lambda": float(r["lambda"]), "eta": eta,
                         "total": total, "milestones": list(milestones), "epochs": [h[0] for h in hist],
                         "errors": [h[1] for h in hist], "final": float(r["final_error"])})
    return runs


def digits_runs(folder: Path = DIGITS_POOLS) -> list[dict]:
    """Completed digits runs (test error every epoch) from the Parquet files under ``folder``."""
    import pandas as pd     # the fit command alone reads Parquet; the classifier stays numpy-only
    runs = []
    for f in sorted(Path(folder).rglob("*.parquet")):
        df = pd.read_parquet(f)
        keys = ["run"] if "run" in df else [c for c in ("eta", "width", "lambda", "seed") if c in df]
        for _, g in df.sort_values("epoch", kind="stable").groupby(keys, sort=True, observed=True):
            total = int(g["epochs"].iloc[-1]) if "epochs" in g and g["epochs"].notna().all() \
                else int(df["epoch"].max())
            status = str(g["status"].iloc[-1]) if "status" in g else "completed"
            err = g["test_error"].to_numpy(float)
            if status != "completed" or int(g["epoch"].iloc[-1]) != total or not np.isfinite(err).all():
                continue    # unfinished or diverged
            ms = g["lr_milestones"].iloc[-1] if "lr_milestones" in g else []
            ms = json.loads(ms) if isinstance(ms, str) else list(ms if ms is not None else [])
            runs.append({"source": f.relative_to(folder).as_posix(), "seed": int(g["seed"].iloc[-1]),
                         "lambda": round(float(g["lambda"].iloc[-1]), 6),
                         "eta": round(float(g["eta"].iloc[-1]), 6) if "eta" in g else None, "total": total,
                         "milestones": [int(m) for m in ms], "epochs": g["epoch"].astype(int).tolist(),
                         "errors": err.tolist(), "final": float(err[-1])})
    return runs


def _tables(runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per run and evaluation: features X (runs × evals × features), bins B (-1 where no decision is
    possible), the evaluation epochs E; per run the outcome y (1 = H) and the fold."""
    width = max(len(r["epochs"]) for r in runs)
    X = np.zeros((len(runs), width, len(FEATURES)))
    B = np.full((len(runs), width), -1)
    E = np.zeros((len(runs), width), dtype=int)
    for i, r in enumerate(runs):
        for j in range(len(r["epochs"])):
            X[i, j] = features(r["epochs"][:j + 1], r["errors"][:j + 1], r["total"], r["milestones"])
            b = time_bin(r["epochs"][j], r["total"])
            B[i, j] = -1 if b is None else b
            E[i, j] = r["epochs"][j]
    y = np.array([int(r["final"] >= H_MIN) for r in runs])
    fold = np.array([r["seed"] % FOLDS for r in runs])
    return X, B, E, y, fold


def _fit_on(X: np.ndarray, B: np.ndarray, y: np.ndarray, rows: np.ndarray) -> dict:
    """A model fitted on every decision point (B >= 0) of the runs ``rows``."""
    pts = B[rows] >= 0
    return fit_logistic(X[rows][pts], np.repeat(y[rows], pts.sum(axis=1)))


def _predict_all(model: dict, X: np.ndarray) -> np.ndarray:
    return predict(model, X.reshape(-1, X.shape[-1])).reshape(X.shape[:2])


def _held_out(X, B, y, fold, rows: np.ndarray) -> np.ndarray:
    """P(H) of the runs ``rows``, each predicted by a model fitted without its fold (grouped by seed)."""
    P = np.zeros(B.shape)
    for k in np.unique(fold[rows]):
        test = rows & (fold == k)
        P[test] = _predict_all(_fit_on(X, B, y, rows & (fold != k)), X[test])
    return P


def _measure(runs, branch, at, E, y, delta) -> dict:
    """The held-out figures of one δ: decisions, misclassification, trial-epochs saved, and P(H | λ)
    from decided + final outcomes beside the all-final one."""
    decided = branch >= 0
    wrong = int((decided & (branch != y)).sum())
    total = np.array([r["total"] for r in runs])
    stop = np.where(decided, np.take_along_axis(E, np.maximum(at, 0)[:, None], axis=1)[:, 0], total)
    outcome = np.where(decided, branch, y)
    by_point: dict = {}
    for r, yi, oi in zip(runs, y, outcome):
        by_point.setdefault((r["eta"], r["lambda"]), []).append((yi, oi))
    frac_h = [[eta, lam, len(v), float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v]))]
              for (eta, lam), v in sorted(by_point.items(), key=lambda kv: (kv[0][0] or 0, kv[0][1]))]
    n_dec = int(decided.sum())
    return {"runs": len(runs), "decided": n_dec, "wrong": wrong,
            "misclassification": wrong / n_dec if n_dec else None,
            "upper_90": wilson_upper(wrong, n_dec), "decision_rate": n_dec / len(runs),
            "epochs_saved": float(1 - stop.sum() / total.sum()),
            "max_frac_h_shift": max(abs(a - b) for *_, a, b in frac_h),
            "frac_h": frac_h, "passed": bool(n_dec and wrong <= delta * n_dec)}


def fit_family(runs: list[dict]) -> dict:
    """Model, allowed bins per δ and the nested held-out measurement, for one data set family."""
    X, B, E, y, fold = _tables(runs)
    everyone = np.ones(len(runs), dtype=bool)
    outer_P = _held_out(X, B, y, fold, everyone)
    calibration, decisions = {}, {}
    for delta in DELTAS:
        branch = np.full(len(runs), -1)
        at = np.full(len(runs), -1)
        for k in range(FOLDS):
            test = fold == k
            if not test.any():
                continue
            # the bins of fold k are chosen on held-out predictions of the other folds only
            inner_P = _held_out(X, B, y, fold, ~test)
            bins = choose_bins(inner_P[~test], B[~test], y[~test], delta)
            branch[test], at[test] = first_decisions(outer_P[test], B[test], delta, bins)
        held = _measure(runs, branch, at, E, y, delta)
        calibration[str(delta)] = {"bins": choose_bins(outer_P, B, y, delta), "passed": held.pop("passed"),
                                   "held_out": held}
        decisions[str(delta)] = {"branch": branch.tolist(),
                                 "epoch": np.where(at >= 0, np.take_along_axis(
                                     E, np.maximum(at, 0)[:, None], axis=1)[:, 0], -1).tolist()}
    sources = sorted({r["source"] for r in runs})
    return {"model": {**_fit_on(X, B, y, everyone), "features": list(FEATURES)},
            "calibration": calibration,
            "data": {"sources": sources, "runs": len(runs), "H": int(y.sum()),
                     "evaluations": int((B >= 0).sum())},
            "held_out_runs": {"seed": [r["seed"] for r in runs], "lambda": [r["lambda"] for r in runs],
                              "eta": [r["eta"] for r in runs], "H": y.tolist(),
                              "total": [r["total"] for r in runs]},
            "held_out_decisions": decisions}


def fit_all(cifar: Path = CIFAR_S2, digits: Path = DIGITS_POOLS) -> dict:
    """Every family's fit, with the CV scheme and what was not fitted and why (the JSON's content)."""
    families = {}
    for name, runs in (("cifar10", cifar_runs(cifar)), ("digits", digits_runs(digits))):
        if runs:
            families[name] = fit_family(runs)
    return {"about": "BranchClassifier fits: dgl_ray/early.py (python -m dgl_ray.early fit)",
            "cv": f"grouped by seed (fold = seed mod {FOLDS}), nested: each outer fold's allowed bins are "
                  f"chosen on the inner held-out predictions of the other folds; a bin is allowed when the Wilson "
                  f"{WILSON_Z:g}σ upper bounds of its decisions' held-out misclassification and of all decisions "
                  f"so far are <= δ",
            "outcome": f"H: final test error >= {H_MIN}", "bins": BINS, "deltas": list(DELTAS),
            "not_fitted": NOT_FITTED, "families": families}


def table(fits: dict) -> str:
    """The calibration table: per family and δ, the held-out (outer-fold) decisions and what they save."""
    lines = [f"{'family':<8} {'δ':>5} {'runs':>5} {'decided':>8} {'wrong':>5} {'miscl.':>7} {'≤δ':>3} "
             f"{'epochs saved':>12} {'max|ΔP(H|λ)|':>13}  allowed bins (tenths of the run)"]
    for name, fam in fits["families"].items():
        for d, c in fam["calibration"].items():
            h = c["held_out"]
            mis = "-" if h["misclassification"] is None else f"{h['misclassification']:.4f}"
            lines.append(f"{name:<8} {float(d):>5g} {h['runs']:>5} {h['decided']:>8} {h['wrong']:>5} {mis:>7} "
                         f"{'yes' if c['passed'] else 'no':>3} {h['epochs_saved']:>12.3f} "
                         f"{h['max_frac_h_shift']:>13.3f}  {c['bins']}")
    return "\n".join(lines)


def frac_h_table(fits: dict, delta: float) -> str:
    """P(H | λ) per (η, λ) on held-out seeds at one δ: all runs to their end beside decided + final
    outcomes (decided runs by their branch): the decisions' bias on the boundary, measured."""
    lines = [f"{'family':<8} {'η':>4} {'λ':>6} {'runs':>5} {'P(H) final':>10} {'P(H) decided+final':>18}"]
    for name, fam in fits["families"].items():
        for eta, lam, n, final, mixed in fam["calibration"][str(delta)]["held_out"]["frac_h"]:
            lines.append(f"{name:<8} {eta if eta is not None else float('nan'):>4g} {lam:>6g} {n:>5} {final:>10.3f} "
                         f"{mixed:>18.3f}")
    return "\n".join(lines)


def _dumps(fits: dict) -> str:
    """The fits as JSON, each list of numbers on one line (the held-out decisions are long lists)."""
    text = json.dumps(fits, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse     # command line only
    p = argparse.ArgumentParser(prog="python -m dgl_ray.early", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="refit from the repository's data and rewrite dgl_ray/early_models.json")
    fit.add_argument("--cifar", type=Path, default=CIFAR_S2, help="folder of the paper's S2*_results.json")
    fit.add_argument("--digits", type=Path, default=DIGITS_POOLS, help="folder of digits Parquet pools")
    fit.add_argument("--out", type=Path, default=MODELS_FILE, help="where to write the fits")
    report = sub.add_parser("report", help="print the stored calibration table")
    report.add_argument("--per-lambda", type=float, metavar="DELTA", choices=DELTAS,
                        help="also P(H | λ) on held-out seeds at this δ: all-final beside decided + final")
    args = p.parse_args(argv)
    if args.command == "fit":
        fits = fit_all(args.cifar, args.digits)
        args.out.write_text(_dumps(fits) + "\n")
        print(f"wrote {args.out}")
    else:
        fits = json.loads(MODELS_FILE.read_text())
    print(table(fits))
    if getattr(args, "per_lambda", None):
        print("\n" + frac_h_table(fits, args.per_lambda))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
