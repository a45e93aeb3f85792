"""The λ boundary fit: P(H | λ) = 1 / (1 + exp(-(λ - λ_c) / w)) by maximum likelihood, and its bootstrap.

One fit for the places that estimate λ_c by maximum likelihood: :func:`dgl_ray.analysis.critical_point`
(through :func:`fit_logistic` and :func:`resample_within_levels`), the version-2 adaptive rule
(:class:`dgl_ray.tune.searchers.BoundaryPolicy`, kept for ``benchmarks/boundary_search.py``) and the replay
benchmarks (:func:`fit_boundary`), so that all give the same λ_c on the same outcomes. The adaptive search
itself holds a Bayesian posterior of the same logistic model (:class:`dgl_ray.design.BoundaryDesign`).

The likelihood is binomial per λ level (k H outcomes of n runs), the same as the Bernoulli likelihood of the
single runs. The scale ``w`` is bounded below by 1/20 of the smallest step between the λ levels: the data
cannot resolve a sharper jump, and a perfect step (no λ with both outcomes) would otherwise run w -> 0.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, special

W_FLOOR_PER_STEP = 1 / 20   # w >= this x the smallest λ step
MIN_LEVELS = 3              # through 2 levels the two-parameter logistic fits any two fractions exactly


def fit_logistic(levels: np.ndarray, high: np.ndarray, runs: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood logistic fit of the H fraction ``high / runs`` per λ in ``levels`` (sorted,
    distinct): (λ_c, scale w), or NaNs with fewer than :data:`MIN_LEVELS` levels or only one outcome.

    The analytic gradient keeps a bootstrap of hundreds of fits fast."""
    levels, high, runs = (np.asarray(v, dtype=float) for v in (levels, high, runs))
    if len(levels) < MIN_LEVELS or high.sum() == 0 or (high == runs).all():
        return math.nan, math.nan
    span = float(levels.max() - levels.min())
    w_min = float(np.min(np.diff(levels))) * W_FLOOR_PER_STEP
    guess = float(levels[np.argmin(np.abs(high / runs - 0.5))])

    def neg_log_lik(theta):
        x0, w = theta
        z = (levels - x0) / w
        log_p, log_q = -np.logaddexp(0, -z), -np.logaddexp(0, z)   # log P(H), log P(L) without overflow
        resid = high - runs * special.expit(z)                     # d(log-lik)/dz
        return -(high * log_p + (runs - high) * log_q).sum(), np.array([(resid / w).sum(), (resid * z / w).sum()])

    res = optimize.minimize(neg_log_lik, x0=[guess, max(span / 10, 2 * w_min)], jac=True,
                            method="SLSQP",  # L-BFGS-B is 30x slower here (BLAS threads)
                            bounds=[(levels.min() - span, levels.max() + span), (w_min, 10 * span)])
    return (float(res.x[0]), float(res.x[1])) if res.success else (math.nan, math.nan)


def fit_runs(lams, high) -> tuple[float, float]:
    """:func:`fit_logistic` of per-run outcomes (``high`` 1 for H, 0 for L, at ``lams``): (λ_c, w)."""
    levels, inv, runs = np.unique(np.asarray(lams, dtype=float), return_inverse=True, return_counts=True)
    n_high = np.bincount(inv, weights=np.asarray(high, dtype=float), minlength=len(levels))
    return fit_logistic(levels, n_high, runs)


def resample_within_levels(lams: np.ndarray, n_boot: int, rng: np.random.Generator):
    """``n_boot`` bootstrap index arrays into ``lams``, each resampling the runs within every λ level with
    replacement (the number of runs per λ is the design's, not a random draw)."""
    by_level = [np.flatnonzero(lams == v) for v in np.unique(lams)]
    for _ in range(n_boot):
        yield np.concatenate([rng.choice(ix, size=len(ix), replace=True) for ix in by_level])


def fit_boundary(lams, high, n_boot: int = 200, seed: int = 0, lo_q: float = 0.1, hi_q: float = 0.9) -> dict:
    """The boundary of per-run outcomes (``high`` 1 for a collapsed H run, 0 for an ordered L run).

    Returns a dict with ``lambda_c``, ``width`` (the coexistence width: λ at P_H = hi_q minus λ at
    P_H = lo_q, = 2 w ln 9 for 0.1/0.9), ``n`` and bootstrap 95% intervals ``lambda_c_ci`` and ``width_ci``
    (:func:`resample_within_levels`, ``n_boot`` draws with RNG ``seed``), NaNs when the outcomes do not
    bracket a transition. λ_c is kept within 0.1 of the λ tried and w at most 1: a searcher proposes
    near it, so a wild extrapolation must not send it away."""
    lams = np.asarray(lams, dtype=float)
    high = np.asarray(high, dtype=float)
    quantile_span = math.log(hi_q / (1 - hi_q)) - math.log(lo_q / (1 - lo_q))

    def fit(idx):
        lambda_c, w = fit_runs(lams[idx], high[idx])
        if math.isnan(lambda_c):
            return lambda_c, w
        return (float(np.clip(lambda_c, lams[idx].min() - 0.1, lams[idx].max() + 0.1)),
                float(min(w, 1.0) * quantile_span))

    lambda_c, width = fit(np.arange(len(lams)))
    out = {"lambda_c": lambda_c, "width": width, "n": int(len(lams)), "lambda_c_ci": (math.nan, math.nan),
           "width_ci": (math.nan, math.nan)}
    if math.isnan(lambda_c) or n_boot <= 0:
        return out
    draws = [d for d in (fit(idx) for idx in resample_within_levels(lams, n_boot, np.random.default_rng(seed)))
             if not math.isnan(d[0])]
    if len(draws) >= 10:
        centres, widths = zip(*draws)
        out["lambda_c_ci"] = tuple(float(v) for v in np.percentile(centres, [2.5, 97.5]))
        out["width_ci"] = tuple(float(v) for v in np.percentile(widths, [2.5, 97.5]))
    return out
