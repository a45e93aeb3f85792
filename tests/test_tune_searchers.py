"""Searchers: emission order, acceptance rules, adaptive policy, and save/restore round trips."""
import math

import numpy as np
import pytest

from dgl_ray.boundary import fit_boundary
from dgl_ray.rows import unpack_group
from dgl_ray.tune import searchers
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


# ---- the adaptive search, version 3: batches of a whole population, known results, target, 2-D ------------

def _row(m, err, status="completed", **extra):
    return {"rows": [{"plan_id": m["plan_id"], "status": status, "test_error": err, "epoch": 2, **extra}]}


def _members(cfg):
    return unpack_group(cfg)            # a population's shared fields (λ too, if all share one) once at the top


def _run(s, outcome, max_rounds=200):
    """Settle every population the searcher hands out, one at a time: (members in order, batches)."""
    done, batches, live, k = [], [], {}, 0
    for _ in range(max_rounds):
        while True:
            nxt = s.suggest(f"t{k}")
            if nxt is None or nxt is FINISHED:
                break
            live[f"t{k}"] = nxt
            batches.append(_members(nxt))
            k += 1
        if not live:
            return done, batches
        tid, cfg = next(iter(live.items()))
        for m in _members(cfg):
            s.on_trial_result(tid, _row(m, outcome(m)))
        s.on_trial_complete(tid, None)
        done += _members(live.pop(tid))
    raise AssertionError("the search never finished")


def _logistic(rng, lambda_c=0.45, width=0.0555):
    def outcome(m):
        c = lambda_c(m) if callable(lambda_c) else lambda_c
        return 0.9 if rng.random() < 1 / (1 + np.exp(-(m["lambda"] - c) / (width / (2 * np.log(9))))) else 0.05
    return outcome


def test_boundary_v3_proposes_whole_populations_with_fresh_seeds():
    s = BoundarySearcher({"dataset": "digits", "epochs": 2, "seed": 7}, 0.36, 0.56, budget=48, max_ahead=2)
    s.pack_sizes({"tinycnn": 8})
    done, batches = _run(s, _logistic(np.random.default_rng(0)))
    assert [len(b) for b in batches] == [8] * 6 and len(done) == 48
    first = [m["lambda"] for m in batches[0]]
    assert len(set(first)) >= 6 and max(first) - min(first) > 0.1      # the prior's batch spreads
    assert all(0.36 <= m["lambda"] <= 0.56 for m in done)
    assert sorted(m["seed"] for m in done) == list(range(7, 55))        # one fresh seed per trial
    assert abs(s.summary()["lambda_c"] - 0.45) < 0.02 and s.summary()["n"] == 48


def test_boundary_known_results_enter_the_design_and_keep_their_seeds():
    known = [{"lambda": lam, "outcome": "T" if lam > 0.45 else "not_H", "seed": seed, "eta": 0.4}
             for seed, lam in enumerate(np.repeat([0.40, 0.44, 0.48, 0.52], 3))]
    known.append({"lambda": 0.3, "outcome": "T", "seed": 99, "eta": 0.8})     # another η: not this cell
    s = BoundarySearcher({"eta": 0.4, "seed": 0}, 0.36, 0.56, budget=6, known=known, start=[0.4, 0.5], n0=2)
    assert s.summary()["n"] == 12 and s.outcomes[0.48] == [1.0, 1.0, 1.0]
    assert "no initial design (12 known outcomes)" in s.describe()[0]
    done, _ = _run(s, _logistic(np.random.default_rng(1)))
    assert len(done) == 6 and {m["seed"] for m in done}.isdisjoint({*range(12), 99})
    assert all(0.44 < m["lambda"] < 0.48 for m in done)                # placed at the boundary the known runs show


def test_boundary_stops_at_the_target_precision():
    s = BoundarySearcher({"seed": 0}, 0.36, 0.56, budget=2000, target_sd=0.01, width_rel=1.0, max_ahead=1)
    s.pack_sizes({"tinycnn": 16})
    done, _ = _run(s, _logistic(np.random.default_rng(2)))
    assert len(done) < 200 and s.reached() and s.summary()["lambda_c_sd"] <= 0.01
    assert "stops at SD(λ_c) <= 0.01" in s.describe()[0]


def test_boundary_decided_member_counts_its_branch():
    from dgl_ray.tune.searchers import outcome_of_row
    assert outcome_of_row({"status": "decided", "decided_branch": "H", "test_error": 0.1}) == "H"
    assert outcome_of_row({"status": "decided", "decided_branch": "not_H", "test_error": 0.9}) == "not_H"
    assert outcome_of_row({"status": "completed", "test_error": 0.95}) == "T"
    assert outcome_of_row({"status": "diverged", "test_error": math.nan}) is None


@pytest.mark.skipif("decided" not in searchers.ENDED, reason="a decided row ends a member once ENDED holds "
                                                            "rows.ENDED_STATUSES (issue 19, the slots part)")
def test_boundary_decided_member_enters_the_design():
    s = BoundarySearcher({"seed": 0}, 0.36, 0.56, budget=2, max_ahead=1)
    s.pack_sizes({"tinycnn": 2})
    a, b = _members(s.suggest("t0"))
    s.on_trial_result("t0", _row(a, 0.12, status="decided", decided_branch="H", p_branch=0.99))
    s.on_trial_result("t0", _row(b, 0.93))
    assert s.summary()["n"] == 2 and sorted(map(len, s.outcomes.values())) in ([1, 1], [2])
    assert sum(sum(v) for v in s.outcomes.values()) == 2.0            # the decided H and the trap


def test_boundary_two_dimensional_over_eta():
    s = BoundarySearcher({"width": 1.0, "seed": 0}, 0.3, 0.6, budget=96, axis="eta", axis_values=(0.2, 0.4, 0.8))
    s.pack_sizes({"tinycnn": 12})
    assert {m["eta"] for m in s.plan_configs()} == {0.2, 0.4, 0.8} and s.size == 8
    done, batches = _run(s, _logistic(np.random.default_rng(3), lambda_c=lambda m: 0.3 + 0.2 * m["eta"]))
    assert {m["eta"] for m in batches[0]} == {0.2, 0.4, 0.8}
    est = s.summary()
    assert set(est) == {0.2, 0.4, 0.8} and all(abs(est[e]["lambda_c"] - (0.3 + 0.2 * e)) < 0.03 for e in est)
    assert set(s.outcomes) == {(m["lambda"], m["eta"]) for m in done}
    assert "x eta 0.2, 0.4, 0.8 (λ_c smooth in eta)" in s.describe()[0]


def test_boundary_state_of_version_2_migrates(tmp_path):
    import pickle
    v2 = {"cls": "BoundarySearcher", "version": 2, "state": {
        "live": {"t3": ["b00003"]}, "ended": {}, "done": {"b00000": 0.1, "b00001": 0.9, "b00002": 0.9},
        "errored": [], "base": {"seed": 5, "eta": 0.4}, "budget": 10, "max_ahead": 2, "grid0": [0.4, 0.5],
        "n_init": 2, "group_size": 1, "lam_of": {"b00000": 0.4, "b00001": 0.5, "b00002": 0.45, "b00003": 0.45},
        "outcomes": {0.4: [0.0], 0.5: [1.0], 0.45: [1.0]}}}
    (tmp_path / "v2.pkl").write_bytes(pickle.dumps(v2))
    s = BoundarySearcher({}, 0.0, 1.0, budget=1)
    s.restore(str(tmp_path / "v2.pkl"))
    assert s.budget == 10 and s.outcomes == {0.4: [0.0], 0.5: [1.0], 0.45: [1.0]}
    assert s.pending == {0.4: 0, 0.5: 0, 0.45: 1} and s.seeds == [5, 5, 5, 6]     # version 2: seeds per λ
    nxt = s.suggest("t4")
    assert nxt["plan_id"] == "b00004" and nxt["seed"] == 7 and 0.4 <= nxt["lambda"] <= 0.5
    s.save(str(tmp_path / "v3.pkl"))
    r = BoundarySearcher({}, 0.0, 1.0, budget=1)
    r.restore(str(tmp_path / "v3.pkl"))
    assert r.get_state() == s.get_state()


def test_boundary_with_early_decisions_queues_a_second_population_behind_the_slots():
    s = BoundarySearcher({"seed": 0, "decide_early": 0.05}, 0.36, 0.56, budget=40, max_ahead=1)
    s.pack_sizes({"tinycnn": 4})
    assert s.per_trial == 8 and s.size == 5
    cfg = s.suggest("t0")
    assert cfg["slots"] == 4 and len(unpack_group(cfg)) == 8        # 4 start, 4 wait for a freed slot
    assert all(m["decide_early"] == 0.05 for m in unpack_group(cfg))
    plain = BoundarySearcher({"seed": 0}, 0.36, 0.56, budget=40, max_ahead=1)
    plain.pack_sizes({"tinycnn": 4})
    assert "slots" not in plain.suggest("t0") and plain.per_trial == 4


def test_adaptive_summary_counts_decided_runs_by_their_branch_and_only_the_searched_cell(capsys):
    import pandas as pd
    from dgl_ray.sweeps._common import adaptive_summary
    s = BoundarySearcher({"eta": 0.4, "width": 1.0}, 0.36, 0.56, budget=4)
    df = pd.DataFrame({"run": ["a", "a", "b", "c", "d", "e"], "epoch": [1, 2, 2, 1, 2, 2],
                       "status": ["running", "completed", "completed", "decided", "completed", "completed"],
                       "decided_branch": [None, None, None, "H", None, None],
                       "test_error": [0.5, 0.9, 0.1, 0.2, math.nan, 0.9],
                       "lambda": [0.5, 0.5, 0.4, 0.46, 0.45, 0.5], "eta": [0.4, 0.4, 0.4, 0.4, 0.4, 0.8],
                       "width": [1.0] * 6})
    adaptive_summary(df, s)
    out = capsys.readouterr().out
    # a: T, b: not_H, c: decided H (its error 0.2 is no final error), d: diverged (none), e: another η
    assert "adaptive: 3 runs with an outcome" in out and "P(trap | H) 0.50" in out and "3 trials" in out


def test_boundary_searcher_pickles_its_design_as_state_not_its_grid():
    import pickle
    s = BoundarySearcher({"seed": 0, "eta": 0.4}, 0.36, 0.56, budget=8, target_sd=0.01)
    _run(s, _logistic(np.random.default_rng(4)))
    blob = pickle.dumps(s)
    assert len(blob) < 50_000                                     # the posterior grid alone is megabytes
    r = pickle.loads(blob)
    assert r.get_state() == s.get_state() and r.summary() == s.summary() and r.suggest("x") is FINISHED


@pytest.mark.parametrize("on_gpu, per_trial, slots", [(False, 4, None), (True, 8, 4)])
def test_adaptive_early_decisions_shrink_on_cpus_and_queue_on_gpus(on_gpu, per_trial, slots):
    """On CPUs a population's epoch time falls with its members, so a population shrinks as its members are
    decided (its proposals stay one population from the outcomes; tests/test_refill.py: a population with
    early decisions drops its decided members' slots); on a GPU the freed slots take a second, queued
    population."""
    from dgl_ray.tune.plan import SizeRule
    s = BoundarySearcher({"seed": 0, "dataset": "digits", "decide_early": 0.05}, 0.36, 0.56, budget=40, max_ahead=1)
    note = s.pack(SizeRule(4, on_gpu))
    cfg = s.suggest("t0")
    assert s.per_trial == per_trial and cfg.get("slots") == slots and len(unpack_group(cfg)) == per_trial
    assert ("queued" in note[0]) == on_gpu and ("shrinking" in note[0]) != on_gpu
    r = BoundarySearcher({}, 0.0, 1.0, budget=1)
    r.set_state(s.get_state())
    assert r.per_trial == per_trial
