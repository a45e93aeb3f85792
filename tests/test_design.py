"""The adaptive boundary design (dgl_ray.design): posterior, batch-aware proposals, trap, two dimensions, state."""
import math

import numpy as np
import pytest

from dgl_ray import paper
from dgl_ray.design import WIDTH_PER_S, BoundaryDesign
from dgl_ray.errors import ConfigError

LAMBDA_C, WIDTH = 0.45, 0.0555          # the CIFAR S1 fit's boundary


def _outcome(rng, lam, lambda_c=LAMBDA_C, width=WIDTH, trap=1.0):
    p = 1 / (1 + math.exp(-(lam - lambda_c) / (width / WIDTH_PER_S)))
    if rng.random() >= p:
        return "not_H"
    return "T" if rng.random() < trap else "H"


def test_outcome_of_follows_the_paper_thresholds():
    assert [paper.outcome_of(e) for e in (0.1, 0.39, 0.40, 0.84, 0.85, 0.9)] == ["not_H", "not_H", "H", "H", "T", "T"]
    with pytest.raises(ValueError, match="diverged"):
        paper.outcome_of(math.nan)


def test_posterior_concentrates_on_a_synthetic_pool():
    rng = np.random.default_rng(0)
    d = BoundaryDesign(0.36, 0.56)
    sds = []
    for n in (40, 400):
        while d.n < n:
            lam = float(rng.uniform(0.36, 0.56))
            d.add(lam, _outcome(rng, lam))
        sds.append(d.summary()["lambda_c_sd"])
    s = d.summary()
    assert abs(s["lambda_c"] - LAMBDA_C) < max(0.01, 3 * s["lambda_c_sd"]) and sds[1] < sds[0] / 2
    lo, hi = s["width_ci"]
    assert lo < WIDTH < hi and hi - lo < WIDTH and s["n"] == 400


def test_a_batch_spreads_and_pending_points_count():
    d = BoundaryDesign(0.36, 0.56, seed=1)
    first = [lam for lam, x in d.propose(8)]
    assert all(x is None for _, x in d.propose(2))
    assert max(first) - min(first) > 0.1 and len(set(first)) >= 6     # the prior: spread over the range
    rng = np.random.default_rng(2)
    for _ in range(120):
        lam = float(rng.uniform(0.36, 0.56))
        d.add(lam, _outcome(rng, lam))
    batch = [lam for lam, _ in d.propose(16)]
    c = d.summary()["lambda_c"]
    # the D-optimal design for λ_c and the width: points on both flanks (P_H ≈ 0.18 and 0.82), none at the ends
    below, above = [lam for lam in batch if lam < c], [lam for lam in batch if lam > c]
    assert len(below) >= 4 and len(above) >= 4 and all(abs(lam - c) < 0.05 for lam in batch)
    # a point proposed many times already (pending) is not proposed again first
    (alone,) = d.propose(1)
    (then,) = d.propose(1, pending=[alone] * 30)
    assert abs(then[0] - alone[0]) > 0.005
    assert d.propose(3, exclude=lambda lam, x: lam < 0.5) and all(lam >= 0.5 for lam, _ in
                                                                 d.propose(3, exclude=lambda lam, x: lam < 0.5))


def test_candidates_restrict_the_proposals():
    d = BoundaryDesign(0.36, 0.56, candidates=[0.40, 0.44, 0.48])
    assert {lam for lam, _ in d.propose(10)} <= {0.40, 0.44, 0.48}


def test_the_trap_counts_as_h_and_on_its_own():
    rng = np.random.default_rng(3)
    lams = rng.uniform(0.36, 0.56, 200)
    outs = [_outcome(rng, float(v), trap=0.5) for v in lams]
    d_t, d_h = BoundaryDesign(0.36, 0.56), BoundaryDesign(0.36, 0.56)
    for lam, o in zip(lams, outs):
        d_t.add(lam, o)
        d_h.add(lam, "H" if o == "T" else o)
    st, sh = d_t.summary(), d_h.summary()
    assert st["lambda_c"] == pytest.approx(sh["lambda_c"]) and st["width"] == pytest.approx(sh["width"])
    n_t, n_high = outs.count("T"), outs.count("T") + outs.count("H")
    assert st["p_trap"] == pytest.approx((n_t + 1) / (n_high + 2)) and 0.35 < st["p_trap"] < 0.65
    assert sh["p_trap"] < 0.05


def test_two_dimensions_smooth_across_the_axis():
    """λ_c(η) = 0.30 + 0.2 η; no outcome at η 0.6: its λ_c comes from the smooth model of the others."""
    etas = (0.2, 0.4, 0.6, 0.8)
    d = BoundaryDesign(0.3, 0.6, axis="eta", axis_values=etas, seed=4)
    assert {x for _, x in d.propose(12)} == set(etas)                # the prior's batch covers every η
    rng = np.random.default_rng(5)
    for _ in range(600):
        eta = float(rng.choice([0.2, 0.4, 0.8]))
        lam = float(rng.uniform(0.3, 0.6))
        d.add(lam, _outcome(rng, lam, lambda_c=0.30 + 0.2 * eta), x=eta)
    s = d.summary()
    assert set(s) == set(etas)
    for eta in etas:
        assert abs(s[eta]["lambda_c"] - (0.30 + 0.2 * eta)) < 0.015, (eta, s[eta])
    assert s[0.6]["n"] == 0 and s[0.6]["lambda_c_sd"] < 0.02       # interpolated, not the prior's 0.09
    assert not d.reached(1e-4) and d.reached(0.05, width_rel=10)


def test_width_axis_and_linear_model_with_two_values():
    d = BoundaryDesign(0.3, 0.6, axis="width", axis_values=(0.5, 2))
    assert d.degree == 1 and set(d.summary()) == {0.5, 2.0}
    with pytest.raises(ConfigError, match="must be > 0"):
        BoundaryDesign(0.3, 0.6, axis="width", axis_values=(0, 1))


def test_reached_needs_both_targets():
    rng = np.random.default_rng(6)
    d = BoundaryDesign(0.36, 0.56)
    assert not d.reached(0.005)
    for _ in range(3000):
        lam = float(rng.choice(np.arange(0.42, 0.4801, 0.005)))
        d.add(lam, _outcome(rng, lam))
    s = d.summary()
    assert s["lambda_c_sd"] < 0.005
    assert d.reached(0.005, width_rel=1.0) and not d.reached(s["lambda_c_sd"] / 2, width_rel=1.0)
    lo, hi = s["width_ci"]
    tight = max(1 - lo / s["width"], hi / s["width"] - 1) * 0.9
    assert not d.reached(0.005, width_rel=tight)


def test_aimed_proposals_go_where_the_binding_target_gains():
    """λ_c binding (tiny SD target, loose width): trials near λ_c; width binding: on the far flanks;
    unaimed (D-optimal): between, near P_H 0.18 and 0.82."""
    rng = np.random.default_rng(8)
    d = BoundaryDesign(0.36, 0.56, seed=2)
    for _ in range(200):
        lam = float(rng.choice(np.arange(0.40, 0.5001, 0.01)))
        d.add(lam, _outcome(rng, lam))
    c = d.summary()["lambda_c"]

    def spread(*aim):
        d.aim(*aim)
        return float(np.mean([abs(lam - c) for lam, _ in d.propose(16)]))
    centre, flanks, dopt = spread(1e-4, 100.0), spread(1.0, 0.01), spread(None)
    assert centre < dopt < flanks, (centre, dopt, flanks)
    with pytest.raises(ConfigError, match="must be > 0"):
        d.aim(0.0)


def test_state_round_trip():
    rng = np.random.default_rng(7)
    d = BoundaryDesign(0.3, 0.6, axis="eta", axis_values=(0.2, 0.4, 0.6), seed=3)
    for _ in range(50):
        lam, eta = float(rng.uniform(0.3, 0.6)), float(rng.choice([0.2, 0.4, 0.6]))
        d.add(lam, _outcome(rng, lam), x=eta)
    d.aim(0.005, 0.3)
    r = BoundaryDesign.from_state(d.get_state())
    assert r.summary() == d.summary() and r.propose(5) == d.propose(5) and r.n == 50 and r.target == (0.005, 0.3)
    e = BoundaryDesign(0, 1)
    e.set_state(d.get_state())
    assert e.summary() == d.summary()


@pytest.mark.parametrize("make, match", [
    (lambda: BoundaryDesign(0.5, 0.4), "need finite lo < hi"),
    (lambda: BoundaryDesign(0.3, math.nan), "need finite lo < hi"),
    (lambda: BoundaryDesign(0.3, 0.6, axis="depth", axis_values=(1, 2)), "allowed: None, eta, width"),
    (lambda: BoundaryDesign(0.3, 0.6, axis="eta", axis_values=(0.4,)), "at least 2 values"),
    (lambda: BoundaryDesign(0.3, 0.6, axis_values=(0.4, 0.5)), "without an axis"),
    (lambda: BoundaryDesign(0.3, 0.6, candidates=[0.2]), r"must lie in \[0.3, 0.6\]"),
    (lambda: BoundaryDesign(0.3, 0.6).add(0.4, "L"), "allowed: not_H, H, T"),
    (lambda: BoundaryDesign(0.3, 0.6).add(0.4, "H", x=0.4), "one-dimensional"),
    (lambda: BoundaryDesign(0.3, 0.6, axis="eta", axis_values=(0.2, 0.4)).add(0.4, "H", x=0.3), "allowed: 0.2, 0.4"),
    (lambda: BoundaryDesign(0.3, 0.6).propose(-1), "k must be >= 0"),
])
def test_bad_input_is_one_line(make, match):
    with pytest.raises(ConfigError, match=match) as e:
        make()
    assert "\n" not in str(e.value)


def _fed(costs):
    """A design with 200 outcomes around λ_c 0.45; ``costs(lam)``: each trial's cost (fraction of its run)."""
    rng = np.random.default_rng(8)
    d = BoundaryDesign(0.36, 0.56, seed=2)
    for _ in range(200):
        lam = float(rng.choice(np.arange(0.40, 0.5001, 0.01)))
        d.add(lam, _outcome(rng, lam), cost=costs(lam))
    return d


def test_cost_aware_proposals_go_where_answers_come_cheap():
    """Every trial at full cost: no cost model, the proposals of a design told nothing. Runs far from λ_c
    decided early (cheap): the proposals move out to the flanks; the low side cheap: more trials there."""
    full, told = _fed(lambda lam: 1.0), BoundaryDesign.from_state(dict(_fed(lambda lam: 1.0).get_state(), costs=[]))
    assert full.expected_cost([(0.45, None)]) is None and full.propose(16) == told.propose(16)
    c = full.summary()["lambda_c"]

    def spread(d):
        return np.array([lam - c for lam, _ in d.propose(16)])
    far_cheap = _fed(lambda lam: 1.0 if abs(lam - LAMBDA_C) < 0.02 else 0.1)
    est = far_cheap.expected_cost([(0.45, None), (0.40, None), (0.50, None)])
    assert est[0] > 0.8 and est[1] < 0.3 and est[2] < 0.3, est
    assert np.abs(spread(far_cheap)).mean() > np.abs(spread(full)).mean() + 0.005
    low_cheap = _fed(lambda lam: 0.1 if lam < LAMBDA_C else 1.0)
    assert (spread(low_cheap) < 0).mean() > (spread(full) < 0).mean()
    r = BoundaryDesign.from_state(far_cheap.get_state())                       # costs kept in the state
    assert r.propose(8) == far_cheap.propose(8) and r.expected_cost([(0.40, None)]) == pytest.approx(est[1:2])


@pytest.mark.parametrize("cost", [0.0, 1.5, math.nan])
def test_a_cost_outside_a_run_is_one_line(cost):
    with pytest.raises(ConfigError, match=r"allowed: a fraction of the run in \(0, 1\]") as e:
        BoundaryDesign(0.3, 0.6).add(0.4, "H", cost=cost)
    assert "\n" not in str(e.value)
