"""Packed searchers (no Ray): chained and adaptive plans hand out populations, learn every member's
outcome from its own last row, and survive save/restore in the middle of a population."""
import numpy as np
import pytest

from dgl_ray.tune.searchers import FINISHED, BoundarySearcher, ChainedSearcher, GridSearcher
from dgl_ray.rows import unpack_group


def _row(cfg, err, status="completed", epoch=2):
    """A member's last row as the trainable reports it (the fields the searchers read)."""
    return {"plan_id": cfg["plan_id"], "status": status, "test_error": err, "epoch": epoch}


def _members(c):
    return unpack_group(c)      # a group's shared fields are held once at its top level


def _chain(tmp_path, n=5, kids=2, select=None, groups=None):
    stages = []
    for s in range(n):
        prep = {"dataset": "digits", "seed": s, "lambda": 0.6, "epochs": 2}
        children = [{"dataset": "digits", "seed": s, "lambda": 0.0, "epochs": 1, "lr_multiplier": m}
                    for m in (0.1, 1.0)[:kids]]
        stages.append((prep, (">=", 0.5), children) + ((groups[s],) if groups else ()))
    return ChainedSearcher(stages, str(tmp_path / "chain"), select=select)


def test_chained_packs_preparation_trials_then_the_children_ready_together(tmp_path):
    c = _chain(tmp_path)
    c.pack_sizes({"tinycnn": 2}, {"tinycnn": 3})
    preps = [c.suggest(f"t{i}") for i in range(3)]
    assert [len(_members(p)) for p in preps] == [2, 2, 1]          # 5 preparation trials in 3 Tune trials
    assert [m["plan_id"] for p in preps for m in _members(p)] == [f"p{i:04d}" for i in range(5)]
    assert all(m["export_checkpoint"].endswith(f"prep{i:04d}.pt") for i, m in enumerate(_members(preps[0])))
    assert c.suggest("w") is None                                    # parents still running
    a, b = _members(preps[0])
    # member 0 ends first: its population has not reported its last row (nor exported b's checkpoint)
    c.on_trial_result("t0", _row(a, 0.9))
    assert c.suggest("w") is None
    c.on_trial_result("t0", _row(b, 0.1))          # the last member's last row: the population settles
    kids = c.suggest("k0")
    assert [m["plan_id"] for m in _members(kids)] == ["c0000_000", "c0000_001"]   # only p0 passed >= 0.5
    assert all(m["init_checkpoint"].endswith("prep0000.pt") and m["parent"] == "p0000" for m in _members(kids))
    assert c.suggest("w") is None
    c.on_trial_complete("t0", _row(b, 0.1))        # Tune's completion after the last row: nothing twice
    # children of two parents that become ready at the same moment share populations (up to 3)
    for m in _members(preps[1]):
        c.on_trial_result("t1", _row(m, 0.95))
    more = [c.suggest("k1"), c.suggest("k2")]
    assert [len(_members(k)) for k in more] == [3, 1]
    assert sorted(m["init_checkpoint"][-8:] for k in more for m in _members(k)) == \
        ["p0002.pt"] * 2 + ["p0003.pt"] * 2
    assert c.summary() == {"preps": 5, "accepted": 3, "rejected": 1}


def test_a_grouped_result_settles_every_member_it_holds(tmp_path):
    """The trainable reports a population's rows of one epoch as ONE Tune result ({"rows", "shared"}):
    the searcher reads every member's row from it."""
    c = _chain(tmp_path, n=2, kids=1)
    c.pack_sizes({"tinycnn": 2}, {"tinycnn": 2})
    p = c.suggest("t0")
    assert "group" in p and "dataset" in p and all("dataset" not in m for m in p["group"])   # shared once
    a, b = _members(p)
    rows = [{"plan_id": a["plan_id"], "test_error": 0.9}, {"plan_id": b["plan_id"], "test_error": 0.7}]
    c.on_trial_result("t0", {"rows": rows, "shared": {"status": "running", "epoch": 1}, "test_error": None})
    assert c.suggest("w") is None                  # rows of a running epoch are no outcome
    # as Tune hands it to searchers: flattened (ray.tune.utils.flatten_dict)
    c.on_trial_result("t0", {"rows": rows, "shared/status": "completed", "shared/epoch": 2, "test_error": None})
    kids = c.suggest("k0")
    assert sorted(m["plan_id"] for m in _members(kids)) == ["c0000_000", "c0001_000"]
    assert c.accepted == [("p0000", 0.9), ("p0001", 0.7)]


def test_chained_restore_in_the_middle_of_a_population_neither_loses_nor_repeats(tmp_path):
    c = _chain(tmp_path, n=2, kids=1)
    c.pack_sizes({"tinycnn": 2}, {"tinycnn": 2})
    p = c.suggest("t0")
    a, b = _members(p)
    c.on_trial_result("t0", _row(a, 0.9))          # a ended; b still training
    c.save(str(tmp_path / "s.pkl"))
    r = ChainedSearcher([], str(tmp_path / "chain"))
    r.restore(str(tmp_path / "s.pkl"))
    # the restored Tune trial resumes from its checkpoint and reports a's last row again, then b's
    r.on_trial_result("t0", _row(a, 0.9))
    assert r.suggest("w") is None
    r.on_trial_result("t0", _row(b, 0.8))
    r.on_trial_result("t0", _row(b, 0.8))          # Tune's duplicate of the last result
    kids = r.suggest("k0")
    assert sorted(m["plan_id"] for m in _members(kids)) == ["c0000_000", "c0001_000"]
    assert r.accepted == [("p0000", 0.9), ("p0001", 0.8)]
    r.on_trial_complete("k0", None)                # a population that ends without last rows: errored
    assert sorted(r.errored) == ["c0000_000", "c0001_000"]
    assert r.suggest("end") is FINISHED


def test_chained_errored_population_rejects_every_member(tmp_path):
    c = _chain(tmp_path, n=3)
    c.pack_sizes({"tinycnn": 3}, {"tinycnn": 3})
    a, b, d = _members(c.suggest("t0"))
    c.on_trial_result("t0", _row(a, 0.9, status="diverged", epoch=1))   # ended early, before the crash
    c.on_trial_complete("t0", error=True)          # retries used up: the population never reported its end
    assert c.summary() == {"preps": 3, "accepted": 0, "rejected": 3}
    assert c.rejections() == {"error": 3}           # its checkpoints were never exported
    assert c.suggest("x") is FINISHED


def test_chained_best_k_waits_for_every_packed_member(tmp_path):
    c = _chain(tmp_path, n=3, kids=1, select={"g": (1, "max")}, groups=["g"] * 3)
    c.pack_sizes({"tinycnn": 2}, {"tinycnn": 2})
    first, second = c.suggest("t0"), c.suggest("t1")
    for m, e in zip(_members(first), (0.7, 0.9)):
        c.on_trial_result("t0", _row(m, e))
    assert c.suggest("w") is None                   # p0002 not done: no selection yet
    c.on_trial_result("t1", _row(second, 0.8))
    kid = c.suggest("k")
    assert kid["parent"] == "p0001" and c.rejections() == {"not best 1": 2}


def test_chained_children_of_other_shapes_pack_apart(tmp_path):
    stages = [({"dataset": "digits", "seed": s, "lambda": 0.6, "epochs": 2}, None,
               [{"dataset": "digits", "seed": s, "lambda": 0.0, "epochs": e} for e in (1, 3)]) for s in range(2)]
    c = ChainedSearcher(stages, str(tmp_path / "chain"))
    c.pack_sizes({"tinycnn": 2}, {"tinycnn": 4})
    p = c.suggest("t0")
    for m in _members(p):
        c.on_trial_result("t0", _row(m, 0.5))
    kids = [c.suggest("k0"), c.suggest("k1")]
    assert [sorted({m["epochs"] for m in _members(k)}) for k in kids] == [[1], [3]]   # epochs are shared
    assert [len(_members(k)) for k in kids] == [2, 2]


def test_unpacked_chained_is_one_trial_per_tune_trial(tmp_path):
    c = _chain(tmp_path, n=2)
    assert "group" not in c.suggest("t0") and c.size == c.members == 6


def test_pack_after_the_first_suggest_is_refused(tmp_path):
    c = _chain(tmp_path, n=2)
    c.suggest("t0")
    with pytest.raises(RuntimeError, match="pack"):
        c.pack_sizes({"tinycnn": 2}, {"tinycnn": 2})
    with pytest.raises(ValueError, match="already holds"):
        c.suggest("t0")


def test_grid_members_get_their_place_in_the_plan():
    cfgs = [{"seed": s} for s in range(5)]
    g = GridSearcher([{"group": cfgs[:2]}, cfgs[2], {"group": cfgs[3:]}])
    got = [g.suggest(f"t{i}") for i in range(3)]
    assert [[m["plan_id"] for m in _members(c)] for c in got] == [["g00000", "g00001"], ["g00002"],
                                                                   ["g00003", "g00004"]]
    assert g.members == 5 and g.size == 3 and g.suggest("x") is FINISHED


def _outcome(rng, lam):                          # true λ_c = 0.47, width ~0.04
    return 0.9 if rng.random() < 1 / (1 + np.exp(-(lam - 0.47) / 0.01)) else 0.05


def test_boundary_proposes_batches_and_stays_adaptive(tmp_path):
    lams = [0.40, 0.44, 0.48, 0.52, 0.56]
    s = BoundarySearcher({"dataset": "digits", "epochs": 2}, 0.40, 0.56, budget=60, start=lams, n0=2, max_ahead=2)
    s.pack_sizes({"tinycnn": 8})
    rng = np.random.default_rng(1)
    design = [s.suggest("d0"), s.suggest("d1")]
    assert [len(_members(d)) for d in design] == [5, 5]              # 10 design trials, one per worker
    assert sorted(m["lambda"] for d in design for m in _members(d)) == sorted(lams * 2)
    assert s.suggest("w") is None                                    # 2 Tune trials ahead: wait
    live = dict(zip(("d0", "d1"), design))
    done, batches, k, restored = [], [], 0, False
    while True:
        tid, cfg = next(iter(live.items()))
        for m in _members(cfg):                                      # its members end, one row each
            s.on_trial_result(tid, _row(m, _outcome(rng, m["lambda"])))
            if not restored and len(done) > 20:                      # save/restore inside a population
                s.save(str(tmp_path / "b.pkl"))
                s = BoundarySearcher({}, 0.4, 0.5, budget=1)
                s.restore(str(tmp_path / "b.pkl"))
                s.on_trial_result(tid, _row(m, 0.9))               # the resumed trial reports m again
                restored = True
        s.on_trial_complete(tid, None)
        done += _members(live.pop(tid))
        while True:
            nxt = s.suggest(f"t{k}")
            if nxt is None or nxt is FINISHED:
                break
            live[f"t{k}"] = nxt
            batches.append([m["lambda"] for m in _members(nxt)])
            k += 1
        if nxt is FINISHED:
            break
    assert len(done) == 60 and len({(m["lambda"], m["seed"]) for m in done}) == 60      # none lost or twice
    assert sum(len(v) for v in s.outcomes.values()) == 60
    assert max(len(b) for b in batches) == 8
    # the batch so far counts as pending: a batch spreads where the policy gains most (the D-optimal rule may
    # still pick one λ for a whole batch, e.g. a new midpoint at λ_c; here it never does)
    full = [b for b in batches if len(b) > 2]
    assert len(full) >= 5 and sum(len(set(b)) > 1 for b in full) >= 0.75 * len(full)
    lam = np.array([m["lambda"] for m in done[10:]])
    assert ((lam > 0.44) & (lam < 0.52)).mean() > 0.6              # the batches still go to the split region
    assert abs(s.summary()["lambda_c"] - 0.47) < 0.03


def test_boundary_errored_population_counts_unfinished_members_as_errored():
    s = BoundarySearcher({"dataset": "digits", "epochs": 2}, 0.4, 0.5, budget=4, start=[0.4, 0.5], n0=2, max_ahead=1)
    s.pack_sizes({"tinycnn": 4})
    g = _members(s.suggest("t0"))
    assert len(g) == 4 and s.pending == {0.4: 2, 0.5: 2}
    s.on_trial_result("t0", _row(g[0], 0.9, status="diverged", epoch=1))
    s.on_trial_complete("t0", error=True)
    assert s.outcomes == {g[0]["lambda"]: [1.0]}          # the member that ended counts
    assert sorted(s.errored) == [m["plan_id"] for m in g[1:]]
    assert s.pending == {0.4: 0, 0.5: 0} and s.suggest("x") is FINISHED


def test_boundary_plan_configs_stand_for_the_budget():
    s = BoundarySearcher({"dataset": "digits", "seed": 3}, 0.4, 0.5, budget=5, start=[0.4, 0.5])
    cfgs = s.plan_configs()
    assert len(cfgs) == s.members == s.size == 5
    assert [(c["lambda"], c["seed"]) for c in cfgs] == [(0.4, 3), (0.5, 3), (0.4, 4), (0.5, 4), (0.4, 5)]


def test_dry_run_states_the_packing_and_resume_checks_it(tmp_path, capsys):
    from tests._sweep_helpers import run_family
    assert run_family("trap", tmp_path, "--n", "5", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "5 preparation trials packed into 3 Tune trials" in out and "50 trials at most" in out
    assert "trial size: 8 Tune trials (50 trials packed)" in out
    assert run_family("coexistence", tmp_path, "--adaptive", "40", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "budget 40 trials" in out and "each round proposes up to 10 x 2 trials" in out
    assert "trial size: 5 Tune trials (40 trials packed)" in out
    # the resolved packing is part of the stored plan: a resume that would pack otherwise is refused
    import importlib
    from dgl_ray import manifest
    from dgl_ray.tune import cli, options, plan
    mod = importlib.import_module("dgl_ray.sweeps.trap")
    o = options.parse(mod.FAMILY, ["--storage", str(tmp_path), "--name", "trap", "--n", "5"])
    spec = mod.plan(o)
    spec, group_size = plan.pack_plan(spec, o)
    o = o.replace(group_size=group_size)
    manifest.write_manifest(o.storage, o.name, cli.sweep_manifest(o, spec))
    (tmp_path / "trap" / "experiment_state-x.json").write_text("{}")
    assert run_family("trap", tmp_path, "--n", "5", "--resume", "--dry-run") == 0
    capsys.readouterr()
    assert run_family("trap", tmp_path, "--n", "5", "--resume", "--group-size", "1") == 2
    assert "--group-size 1 (stored: " in capsys.readouterr().err


def test_a_result_without_an_outcome_is_no_outcome_and_old_states_restore(tmp_path):
    import pickle
    c = _chain(tmp_path, n=2)
    c.suggest("t0")
    c.on_trial_complete("t0", {"done": True, "trial_id": "t0"})     # Tune's bookkeeping only: no last row
    assert c.rejections() == {"error": 1} and c.errored == ["p0000"]
    # a state saved before packing (one plan id per live Tune trial) restores and settles as before
    old = _chain(tmp_path, n=2).get_state()["state"]
    old["live"] = {"t9": "p0001"}
    old["next_prep"] = 2
    del old["ended"], old["prep_groups"]
    (tmp_path / "old.pkl").write_bytes(pickle.dumps({"cls": "ChainedSearcher", "state": old}))
    r = ChainedSearcher([], str(tmp_path / "chain"))
    r.restore(str(tmp_path / "old.pkl"))
    r.on_trial_result("t9", {"plan_id": "p0001", "status": "completed", "test_error": 0.9})
    assert r.accepted == [("p0001", 0.9)] and r.suggest("k")["parent"] == "p0001"


def test_boundary_learns_the_cost_of_decided_members():
    """A decided member costs the design the fraction of its epochs it trained; a completed one 1."""
    s = BoundarySearcher({"dataset": "digits", "epochs": 30, "decide_early": 0.05}, 0.4, 0.5, budget=4,
                         start=[0.4, 0.5], n0=2, max_ahead=1)
    s.pack_sizes({"tinycnn": 4})
    g = _members(s.suggest("t0"))
    s.on_trial_result("t0", {**_row(g[0], 0.05, status="decided", epoch=6), "decided_branch": "not_H"})
    s.on_trial_result("t0", {**_row(g[1], 0.9, status="decided", epoch=3), "decided_branch": "H"})
    for m in g[2:]:
        s.on_trial_result("t0", _row(m, 0.05, epoch=30))
    state = s._design.get_state()
    assert sorted(state["costs"]) == [[0.4, None, 0.2 + 1.0], [0.5, None, 0.1 + 1.0]], state["costs"]
    assert s._design.expected_cost([(0.4, None)]) is not None
