"""The adaptive boundary design: a Bayesian logistic model of P(H | λ) and batch proposals that learn
λ_c and the coexistence width together (numpy only; the searcher and the replay benchmarks share it).

Model. P(H | λ, x) = σ((λ - λ_c(x)) / s), the coexistence width w = 2 s ln 9 (λ at P_H 0.9 minus λ at 0.1,
as :func:`dgl_ray.boundary.fit_boundary`). One dimension: λ_c(x) = a0. Two dimensions (``axis`` "eta" or
"width" with its values): λ_c(x) = a0 + a1 u + a2 u² (a2 only with 3 or more values), u the axis value
scaled to [-1, 1] (log of the width multiplier: widths double), s shared across x: a smooth λ_c(x) that
pools every outcome. The posterior is held on a grid over (a.., log s): uniform priors on a box (a0 in
[lo, hi]: λ_c is assumed inside the searched range; a1, a2 within ± the range; s from 1/1000 to 1/2 of
the range, log-uniform) that narrows around the posterior's bulk as outcomes come in (every outcome is
kept and the likelihood recomputed on the new grid, so narrowing loses nothing but prior mass outside
± ZOOM_SD posterior SDs).

Criterion: Bayesian D-optimality. A point's Fisher information for (a.., log s) is p(1-p) g gᵀ with g the
gradient of the logit; it does not depend on the outcome, so pending points (proposed, not yet settled)
count exactly. A batch is chosen greedily: each next point maximises the mean over posterior draws of
log det(M + p(1-p) g gᵀ), M the information of the outcomes, the pending points and the batch so far.
For one logistic this puts trials near P(H) ≈ 0.18 and 0.82 (the classical D-optimal design), where
λ_c and the width are learnt together; averaged over the posterior it spreads while λ_c is unknown.
Aimed at a precision target (:meth:`BoundaryDesign.aim`: the searcher's --target-sd), each next point is
instead the one that most lowers tr(L M⁻¹), the variances of λ_c (at every axis value) and of log s, each
divided by its target variance and weighted by how far it still is from it: the trials go to whichever
target binds (measured: fewer trials to the stop, benchmarks/design_replay.py --to-target).

Cost: with early decisions (``--decide-early``) a trial costs the fraction of its epochs it trained
(``add(..., cost=)``), and runs far from λ_c are decided sooner. Once a cost below 1 is known, each next
point maximises the criterion's gain per expected cost instead (:meth:`BoundaryDesign.expected_cost`: the
mean cost of the settled trials, kernel-weighted by their distance to the point in units of the logistic
scale, z = (λ - λ_c)/s, under each posterior draw, with one pseudo-trial at full cost): the trials go
where an answer costs the fewest trial-epochs (measured: benchmarks/time_to_answer.py, adaptive+early).
Without decisions every cost is 1 and the proposals are the same as before.

Trap: outcome "T" counts as H for the boundary and on its own as the trap fraction of the H outcomes
(``p_trap``: posterior mean under a uniform prior, per axis value in two dimensions).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import special

from .errors import ConfigError
from .paper import OUTCOMES

AXES = ("eta", "width")
WIDTH_PER_S = 2 * math.log(9)       # coexistence width (P_H 0.1 -> 0.9) per logistic scale s
S_RANGE = (1 / 1000, 1 / 2)         # prior on s, as fractions of hi - lo
CELLS = 40_000                      # grid cells of the posterior (split evenly across its dimensions)
ZOOM_SD = 6.0                       # the grid keeps the posterior mean ± this many SDs per dimension (a new one: 1.5x)
DRAWS = 48                          # posterior draws the criterion averages over
CANDIDATE_STEP = 0.0005             # λ resolution of the proposals when no candidates are given
MAX_CANDIDATES = 401
COST_BANDWIDTH = 1.0                # the cost model's kernel width in z = (λ - λ_c)/s
COST_PRIOR = 1.0                    # pseudo-trials at full cost in every kernel average (unseen z: cost 1)


MIN_COST = 1e-3      # a run stopped at its first evaluation still cost something (the design divides by costs)


def run_cost(epoch, epochs) -> float:
    """The design's cost of a run that stopped after ``epoch`` of its ``epochs`` (decided early): the
    fraction of the run it trained, in [:data:`MIN_COST`, 1]. The searcher and ``--extend`` both use it."""
    return min(1.0, max(float(epoch) / float(epochs), MIN_COST))


class BoundaryDesign:
    """Bayesian logistic boundary in λ (and λ_c smooth across an axis), with batch-aware D-optimal proposals."""

    def __init__(self, lo: float, hi: float, *, axis: str | None = None, axis_values: Sequence[float] = (),
                 candidates: Sequence[float] | None = None, seed: int = 0):
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"boundary design: λ range [{lo:g}, {hi:g}]; need finite lo < hi")
        if axis is not None and axis not in AXES:
            raise ConfigError(f"boundary design: axis {axis!r}; allowed: None, {', '.join(AXES)}")
        xs = tuple(sorted({float(v) for v in axis_values}))
        if axis is None and xs:
            raise ConfigError("boundary design: axis values given without an axis (eta or width)")
        if axis is not None and len(xs) < 2:
            raise ConfigError(f"boundary design: axis {axis} needs at least 2 values, got {list(xs)}")
        if axis == "width" and min(xs) <= 0:
            raise ConfigError(f"boundary design: width values {list(xs)} must be > 0")
        if candidates is not None:
            cand = sorted({round(float(v), 10) for v in candidates})
            if not cand or cand[0] < lo or cand[-1] > hi:
                raise ConfigError(f"boundary design: candidates {cand[:3]}... must lie in [{lo:g}, {hi:g}]")
        self.lo, self.hi, self.axis, self.axis_values, self.seed = lo, hi, axis, xs, int(seed)
        self.candidates = None if candidates is None else cand
        self._obs: dict = {}            # (λ, x) -> [not_H, H, T] counts
        self._cost: dict = {}           # (λ, x) -> summed cost (fraction of the run trained) of its outcomes
        self.target = None              # (target SD of λ_c, width_rel) once aimed (aim): the criterion's targets
        self._prior_box = self._box0()
        self._set_grid(self._prior_box)

    # ---- the model -------------------------------------------------------------------------------

    @property
    def degree(self) -> int:
        """Polynomial degree of λ_c(u): 0 in one dimension, else 1 (two values) or 2."""
        return 0 if self.axis is None else min(2, len(self.axis_values) - 1)

    def _u(self, x) -> float:
        if self.axis is None:
            return 0.0
        t = np.log if self.axis == "width" else np.asarray
        a, b = float(t(self.axis_values[0])), float(t(self.axis_values[-1]))
        return float(2 * (t(float(x)) - a) / (b - a) - 1)

    def _basis(self, u):
        """Rows (1, u, u²)[:degree + 1] for each u."""
        u = np.atleast_1d(np.asarray(u, dtype=float))
        return np.stack([u ** k for k in range(self.degree + 1)], axis=-1)

    def _box0(self) -> np.ndarray:
        span = self.hi - self.lo
        box = [(self.lo, self.hi)] + [(-span, span)] * self.degree
        box.append((math.log(S_RANGE[0] * span), math.log(S_RANGE[1] * span)))
        return np.array(box)

    def _set_grid(self, box: np.ndarray) -> None:
        per = max(9, int(round(CELLS ** (1 / len(box)))))
        if len(box) == 2:                       # one dimension: λ_c finer than log s
            sizes = [int(CELLS // 61), 61]
        else:
            sizes = [per] * len(box)
        self._box = np.array(box, dtype=float)
        self._axes = [np.linspace(a, b, n) for (a, b), n in zip(self._box, sizes)]
        mesh = np.meshgrid(*self._axes, indexing="ij")
        self._theta = np.stack([m.ravel() for m in mesh], axis=1)       # cells x (a.., log s)
        self._inv_s = np.exp(-self._theta[:, -1])
        xs = self.axis_values or (None,)
        self._c_at = dict(zip(xs, (self._theta[:, :-1] @ self._basis([self._u(x) for x in xs]).T).T))
        self._loglik = np.zeros(len(self._theta))
        self._unseen = {k: list(c) for k, c in self._obs.items()}      # outcomes not yet in _loglik
        self._post = None

    def _logit(self, theta: np.ndarray, lam, u) -> np.ndarray:
        """(λ - λ_c(u)) / s for every row of ``theta`` (and every λ, u given as equal-length arrays)."""
        c = theta[:, :-1] @ self._basis(u).T                 # cells x points
        return (np.atleast_1d(lam)[None, :] - c) / np.exp(theta[:, -1:])

    def _loglik_now(self) -> np.ndarray:
        """The log-likelihood on the grid, the outcomes added since it was last read included."""
        for (lam, x), (n_low, n_high, n_trap) in self._unseen.items():
            z = (lam - self._c_at[x]) * self._inv_s
            log_p = -np.logaddexp(0, -z)                    # log P(H); log P(not H) = log_p - z
            self._loglik += (n_low + n_high + n_trap) * log_p - n_low * z
        self._unseen = {}
        return self._loglik

    def _posterior(self) -> np.ndarray:
        if self._post is None:
            loglik = self._loglik_now()
            w = np.exp(loglik - loglik.max())
            self._post = w / w.sum()
            self._zoom()
        return self._post

    def _moments(self, post):
        mean = post @ self._theta
        sd = np.sqrt(np.maximum(post @ (self._theta - mean) ** 2, 0))
        return mean, sd

    def _zoom(self) -> None:
        """Narrow the grid to the posterior's bulk when it fills a small part of it (or widen it, within
        the prior box, when the bulk reaches an edge); at most a few rounds."""
        for _ in range(4):
            mean, sd = self._moments(self._post)
            step = np.array([a[1] - a[0] for a in self._axes])

            def box(n_sd):
                half = np.maximum(n_sd * sd, 2 * step)
                return np.stack([np.maximum(mean - half, self._prior_box[:, 0]),
                                 np.minimum(mean + half, self._prior_box[:, 1])], axis=1)
            need, target = box(ZOOM_SD), box(1.5 * ZOOM_SD)     # regrid with room: fewer regrids as it moves
            cur = self._box[:, 1] - self._box[:, 0]
            narrower = (target[:, 1] - target[:, 0]) < 0.5 * cur
            outside = (need[:, 0] < self._box[:, 0] - 1e-12) | (need[:, 1] > self._box[:, 1] + 1e-12)
            if not (narrower.any() or outside.any()):
                return
            self._set_grid(np.where((narrower | outside)[:, None], target, self._box))
            loglik = self._loglik_now()
            w = np.exp(loglik - loglik.max())
            self._post = w / w.sum()

    # ---- outcomes --------------------------------------------------------------------------------

    def _check_x(self, x) -> float | None:
        if self.axis is None:
            if x is not None:
                raise ConfigError(f"boundary design: axis value {x!r} given to a one-dimensional design")
            return None
        if x is None or float(x) not in self.axis_values:
            raise ConfigError(f"boundary design: {self.axis} {x!r}; allowed: {', '.join(f'{v:g}' for v in self.axis_values)}")
        return float(x)

    def add(self, lam: float, outcome: str, x: float | None = None, cost: float = 1.0) -> None:
        """One settled trial's outcome ("not_H", "H" or "T") at λ (and axis value ``x``); ``cost``: the
        fraction of its epochs it trained (1: to the end; less: decided early; :func:`run_cost`)."""
        if outcome not in OUTCOMES:
            raise ConfigError(f"boundary design: outcome {outcome!r}; allowed: {', '.join(OUTCOMES)}")
        lam, cost = float(lam), float(cost)
        if not math.isfinite(lam):
            raise ConfigError(f"boundary design: λ {lam!r} must be a finite number")
        if not 0 < cost <= 1:
            raise ConfigError(f"boundary design: cost {cost!r}; allowed: a fraction of the run in (0, 1]")
        key = (round(lam, 10), self._check_x(x))
        self._obs.setdefault(key, [0, 0, 0])[OUTCOMES.index(outcome)] += 1
        self._cost[key] = self._cost.get(key, 0.0) + cost
        self._unseen.setdefault(key, [0, 0, 0])[OUTCOMES.index(outcome)] += 1
        self._post = None

    @property
    def n(self) -> int:
        return int(sum(sum(c) for c in self._obs.values()))

    def outcomes(self) -> dict:
        """(λ, x) -> {outcome: count} of the outcomes so far."""
        return {k: dict(zip(OUTCOMES, c)) for k, c in self._obs.items()}

    # ---- proposals -------------------------------------------------------------------------------

    def _candidates(self) -> list[tuple[float, float | None]]:
        if self.candidates is not None:
            lams = self.candidates
        else:
            n = min(MAX_CANDIDATES, int(round((self.hi - self.lo) / CANDIDATE_STEP)) + 1)
            lams = sorted({round(float(v), 4) for v in np.linspace(self.lo, self.hi, n)})
        xs = self.axis_values or (None,)
        return [(lam, x) for x in xs for lam in lams]

    def _grads(self, theta: np.ndarray, lams, us):
        """p(1-p) (draws x points) and the logit's gradient g (draws x points x params)."""
        z = self._logit(theta, np.asarray(lams, dtype=float), us)
        p = special.expit(z)
        basis = self._basis(us)                                         # points x (degree + 1)
        s = np.exp(theta[:, -1])[:, None, None]
        g = np.concatenate([np.broadcast_to(-basis[None], (len(theta), *basis.shape)) / s, -z[..., None]], axis=-1)
        return p * (1 - p), g

    def propose(self, k: int, pending: Sequence[tuple[float, float | None]] = (),
                exclude: Callable[[float, float | None], bool] | None = None) -> list[tuple[float, float | None]]:
        """``k`` new (λ, x) points (x None in one dimension), each chosen given the outcomes, the
        ``pending`` points and the points of this batch before it; ``exclude(λ, x)`` True skips a point."""
        if int(k) < 0:
            raise ConfigError(f"boundary design: propose({k}): k must be >= 0")
        cands = [c for c in self._candidates() if exclude is None or not exclude(*c)]
        if not cands or not k:
            return []
        pending = [(float(lam), self._check_x(x)) for lam, x in pending]
        post = self._posterior()
        rng = np.random.default_rng([self.seed, self.n, len(pending)])
        theta = self._theta[rng.choice(len(post), size=DRAWS, p=post)]
        known = [(lam, x, sum(c)) for (lam, x), c in self._obs.items()] + [(lam, x, 1) for lam, x in pending]
        half = (self._prior_box[:, 1] - self._prior_box[:, 0]) / 2
        info = np.broadcast_to(np.diag(1 / half ** 2), (DRAWS, len(half), len(half))).copy()   # the weak prior
        if known:
            lams, xs, ns = zip(*known)
            q, g = self._grads(theta, lams, [self._u(x) for x in xs])
            info += np.matmul((g * (q * np.asarray(ns, dtype=float))[..., None]).transpose(0, 2, 1), g)
        cq, cg = self._grads(theta, [c[0] for c in cands], [self._u(c[1]) for c in cands])
        cost = self.expected_cost(cands, theta)                             # None: every trial costs 1
        out = []
        for _ in range(int(k)):
            inv = np.linalg.inv(info)
            a = np.matmul(cg, inv)                                          # M^-1 g per draw and candidate
            v = (a * cg).sum(axis=-1)                                       # g' M^-1 g
            if self.target is None:                                         # D-optimal: log det(M + q g g')
                gain = np.log1p(cq * v).mean(axis=0)
            else:                                       # the targets' weighted variance, tr(L M^-1), falls most
                gain = (cq * (np.matmul(a, self._target_weights(inv)) * a).sum(axis=-1) / (1 + cq * v)).mean(axis=0)
            best = int(np.argmax(gain if cost is None else gain / cost))
            out.append(cands[best])
            info += cq[:, best, None, None] * (cg[:, best, :, None] * cg[:, best, None, :])
        return out

    def expected_cost(self, points: Sequence[tuple[float, float | None]], theta: np.ndarray | None = None):
        """The expected cost (fraction of a run) of a trial at each (λ, x) of ``points``, averaged over the
        posterior draws ``theta`` (default: the posterior mean), or None while every settled trial cost 1.
        Under a draw each settled cell sits at z = (λ - λ_c(x))/s; a point's cost is the kernel-weighted
        (Gaussian, width COST_BANDWIDTH in z) mean of the cells' costs, with COST_PRIOR pseudo-trials at
        cost 1 (a point unlike every settled trial costs a whole run)."""
        n = {k: sum(c) for k, c in self._obs.items()}
        if all(self._cost[k] >= n[k] - 1e-9 for k in n):
            return None
        if theta is None:
            theta = (self._posterior() @ self._theta)[None, :]
        keys = list(n)
        z_obs = self._logit(theta, [k[0] for k in keys], [self._u(k[1]) for k in keys])     # draws x cells
        z_pts = self._logit(theta, [p[0] for p in points], [self._u(p[1]) for p in points])  # draws x points
        w = np.exp(-0.5 * ((z_pts[:, :, None] - z_obs[:, None, :]) / COST_BANDWIDTH) ** 2)
        counts = np.array([n[k] for k in keys], dtype=float)
        costs = np.array([self._cost[k] for k in keys])
        c = (w @ costs + COST_PRIOR) / (w @ counts + COST_PRIOR)                       # draws x points
        return c.mean(axis=0)

    def aim(self, target_sd: float | None, width_rel: float = 0.25) -> None:
        """Propose for a precision target (None: D-optimal): each next point is the one that most lowers
        the posterior variances of λ_c (at every axis value) and of log width, each relative to its target
        (SD ``target_sd``; the width's 95% interval within ± ``width_rel``: SD of log width log(1 + width_rel)
        / 1.96), weighted by how far each still is from it, so the trials go to whichever target binds."""
        if target_sd is not None and not (target_sd > 0 and width_rel > 0):
            raise ConfigError(f"boundary design: target SD {target_sd} and width_rel {width_rel} must be > 0")
        self.target = None if target_sd is None else (float(target_sd), float(width_rel))

    def _target_weights(self, inv: np.ndarray) -> np.ndarray:
        """L of the criterion tr(L M^-1): Σ_j w_j l_j l_j' / T_j², l_j the gradient of λ_c at each axis value
        and of log s, T_j their target SDs, w_j ∝ their current variance / T_j² (mean over the draws)."""
        target_sd, width_rel = self.target
        xs = self.axis_values or (None,)
        rows = np.zeros((len(xs) + 1, inv.shape[-1]))
        rows[:-1, :-1] = self._basis([self._u(x) for x in xs])
        rows[-1, -1] = 1.0
        sds = np.array([target_sd] * len(xs) + [math.log(1 + width_rel) / 1.96])
        var = np.einsum("ji,dik,jk->j", rows, inv, rows) / DRAWS
        w = var / sds ** 2
        return (rows.T * (w / w.sum() / sds ** 2)) @ rows

    # ---- estimates -------------------------------------------------------------------------------

    def _summary_at(self, x, post) -> dict:
        c = self._theta[:, :-1] @ self._basis([self._u(x)])[0]
        mean = float(post @ c)
        sd = float(math.sqrt(max(post @ (c - mean) ** 2, 0.0)))
        widths = WIDTH_PER_S * np.exp(self._axes[-1])
        marginal = post.reshape([len(a) for a in self._axes]).sum(axis=tuple(range(len(self._axes) - 1)))
        cdf = np.cumsum(marginal)
        lo, med, hi = (float(np.interp(q, cdf, widths)) for q in (0.025, 0.5, 0.975))
        counts = np.zeros(3)
        for (_, ox), cnt in self._obs.items():
            if ox == x:
                counts += cnt
        return {"lambda_c": mean, "lambda_c_sd": sd, "width": med, "width_ci": (lo, hi),
                "p_trap": float((counts[2] + 1) / (counts[1] + counts[2] + 2)), "n": int(counts.sum())}

    def summary(self) -> dict:
        """One dimension: {lambda_c (posterior mean), lambda_c_sd, width (posterior median), width_ci
        (95%), p_trap, n}; two: {axis value: that dict}."""
        post = self._posterior()
        if self.axis is None:
            return self._summary_at(None, post)
        return {x: self._summary_at(x, post) for x in self.axis_values}

    def reached(self, target_sd: float, width_rel: float = 0.25) -> bool:
        """SD(λ_c) <= target_sd and the width's 95% interval within ± width_rel of the width (at every
        axis value in two dimensions)."""
        s = self.summary()
        for d in ([s] if self.axis is None else s.values()):
            lo, hi = d["width_ci"]
            if not (d["lambda_c_sd"] <= target_sd and lo >= d["width"] * (1 - width_rel)
                    and hi <= d["width"] * (1 + width_rel)):
                return False
        return True

    # ---- state -----------------------------------------------------------------------------------

    def get_state(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "axis": self.axis, "axis_values": list(self.axis_values),
                "candidates": self.candidates, "seed": self.seed, "target": self.target,
                "outcomes": [[lam, x, list(c)] for (lam, x), c in self._obs.items()],
                "costs": [[lam, x, c] for (lam, x), c in self._cost.items()]}

    @classmethod
    def from_state(cls, state: dict) -> "BoundaryDesign":
        d = cls(state["lo"], state["hi"], axis=state.get("axis"), axis_values=state.get("axis_values", ()),
                candidates=state.get("candidates"), seed=state.get("seed", 0))
        d._obs = {(float(lam), None if x is None else float(x)): list(c) for lam, x, c in state["outcomes"]}
        d._cost = {k: float(sum(c)) for k, c in d._obs.items()}     # a state without costs: every trial cost 1
        d._cost.update({(float(lam), None if x is None else float(x)): float(c) for lam, x, c in state.get("costs", ())})
        d.aim(*(state.get("target") or (None,)))
        d._set_grid(d._prior_box)
        return d

    def set_state(self, state: dict) -> None:
        self.__dict__.update(BoundaryDesign.from_state(state).__dict__)
