"""Searchers: emission order, acceptance rules, adaptive policy, and save/restore round trips."""
import math

import numpy as np

from dgl_ray.boundary import fit_boundary
from dgl_ray.tune.searchers import FINISHED, BoundaryPolicy, BoundarySearcher, ChainedSearcher, GridSearcher


def _drain(s, prefix="t", complete=None, start=0):
    out, i = [], start
    while True:
        c = s.suggest(f"{prefix}{i}")
        if c is FINISHED or c is None:
            return out, c
        out.append((f"{prefix}{i}", c))
        if complete:
            s.on_trial_complete(f"{prefix}{i}", complete(c))
        i += 1


def test_grid_order_and_restore(tmp_path):
    cfgs = [{"seed": s, "lambda": l} for s in (0, 1) for l in (0.4, 0.5, 0.6)]
    g = GridSearcher(cfgs)
    first = [g.suggest(f"t{i}") for i in range(2)]
    assert [(c["seed"], c["lambda"]) for c in first] == [(0, 0.4), (0, 0.5)]
    g.save(str(tmp_path / "s.pkl"))
    g2 = GridSearcher([])
    g2.restore(str(tmp_path / "s.pkl"))
    rest, end = _drain(g2, start=2)
    assert end is FINISHED and [(c["seed"], c["lambda"]) for _, c in rest] == [(c["seed"], c["lambda"]) for c in cfgs[2:]]
    assert len({c["plan_id"] for _, c in rest} | {c["plan_id"] for c in first}) == 6


def test_chained_acceptance_and_restore(tmp_path):
    stages = [({"seed": s, "role": "prep"}, ("<=", 0.30), [{"seed": s, "lambda": 0.46}, {"seed": s, "lambda": 0.54}])
              for s in range(3)]
    c = ChainedSearcher(stages, str(tmp_path / "chain"))
    preps = [c.suggest(f"p{i}") for i in range(3)]
    assert all(p["role"] == "prep" and p["export_checkpoint"].endswith(f"prep{i:04d}.pt") for i, p in enumerate(preps))
    assert c.suggest("x") is None                      # waits for running parents
    c.on_trial_complete("p0", {"test_error": 0.10})   # accepted
    c.on_trial_complete("p1", {"test_error": 0.50})   # rejected by the paper's rule
    c.save(str(tmp_path / "c.pkl"))
    c2 = ChainedSearcher([], str(tmp_path / "chain"))
    c2.restore(str(tmp_path / "c.pkl"))
    kids = [c2.suggest("k0"), c2.suggest("k1")]
    assert all(k["init_checkpoint"].endswith("prep0000.pt") and k["parent"] == "p0000" for k in kids)
    assert c2.suggest("k2") is None                    # p2 still running
    c2.on_trial_complete("p2", None, error=True)       # an errored parent has no children
    for k in ("k0", "k1"):
        c2.on_trial_complete(k, {"test_error": 0.2})
    assert c2.suggest("k3") is FINISHED
    assert c2.summary() == {"preps": 3, "accepted": 1, "rejected": 2}


def test_fit_boundary_recovers_lambda_c():
    rng = np.random.default_rng(0)
    lam = np.repeat(np.arange(0.40, 0.56, 0.01), 20)
    p = 1 / (1 + np.exp(-(lam - 0.47) / 0.01))
    y = (rng.random(len(lam)) < p).astype(float)
    est = fit_boundary(lam, y, n_boot=100)
    assert abs(est["lambda_c"] - 0.47) < 0.01
    lo, hi = est["lambda_c_ci"]
    assert lo < est["lambda_c"] < hi and hi - lo < 0.02
    assert math.isnan(fit_boundary([0.4, 0.5], [0, 0])["lambda_c"])


def test_boundary_searcher_concentrates_on_the_transition(tmp_path):
    s = BoundarySearcher({"epochs": 2}, 0.40, 0.56, budget=40, start=[0.40, 0.44, 0.48, 0.52, 0.56], n0=2)
    rng = np.random.default_rng(1)

    def outcome(c):                                    # true λ_c = 0.47, width ~0.04
        ph = 1 / (1 + np.exp(-(c["lambda"] - 0.47) / 0.01))
        return {"test_error": 0.9 if rng.random() < ph else 0.05}

    done, i = [], 0
    while True:
        c = s.suggest(f"t{i}")
        if c is FINISHED:
            break
        if c is None:
            raise AssertionError("nothing live, yet the searcher waits")
        s.on_trial_complete(f"t{i}", outcome(c))
        done.append(c)
        i += 1
        if i == 20:                                    # save/restore halfway
            s.save(str(tmp_path / "b.pkl"))
            s = BoundarySearcher({}, 0.4, 0.5, budget=1)
            s.restore(str(tmp_path / "b.pkl"))
    assert len(done) == 40
    lams = np.array([c["lambda"] for c in done])
    assert ((lams > 0.44) & (lams < 0.52)).mean() > 0.6            # most trials inside the split region
    assert len({c["seed"] for c in done}) == 40                        # a fresh seed per trial
    est = s.summary()
    assert abs(est["lambda_c"] - 0.47) < 0.02


def test_policy_initial_design():
    pol = BoundaryPolicy([0.4, 0.5], n0=2)
    assert pol.propose({}, {}) == 0.4
    assert pol.propose({0.4: [0, 0]}, {}) == 0.5
