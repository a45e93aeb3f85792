"""Searcher state: versioned dataclasses behind get_state/set_state, one migration from older stored forms
(issue 18, item 5). The stored states are those of tests/data/sweeps-2026-12 (written by the December 2026
release: version 1, pickled dicts); tests/test_sweep_data_resume.py resumes those sweeps whole."""
import dataclasses
import pickle
from pathlib import Path

import pytest

from dgl_ray.tune.searchers import (FINISHED, STATE_VERSION, BoundarySearcher, BoundaryState, ChainedSearcher, ChainedState,
                                    GridSearcher, GridState, PlanId, Preparation, migrate_state)

DATA = Path(__file__).parent / "data" / "sweeps-2026-12"


def _names(state_cls) -> set:
    return {f.name for f in dataclasses.fields(state_cls)}


def _fields(searcher) -> set:
    """The fields of the searcher's state as it saves it now (the current version)."""
    saved = searcher.get_state()
    assert saved["version"] == STATE_VERSION
    return set(saved["state"])


def _stored(name):
    (path,) = (DATA / name).glob("searcher-state-*.pkl")
    return path, pickle.loads(path.read_bytes())


def test_a_stored_grid_state_loads_and_its_progress_is_rebuilt():
    path, saved = _stored("grid")
    assert "version" not in saved                   # the December 2026 form
    g = GridSearcher([])
    g.restore(str(path))
    assert _fields(g) == _names(GridState) and g.kind == "grid"
    assert g.size == 3 and g.members == 6 and len(g.member_configs) == 6
    assert sorted(g.done) == ["g00000", "g00001", "g00002", "g00003"] and g.errored == []
    assert saved["state"]["next"] == 3 and g.suggest("x") is FINISHED     # every Tune trial handed out


def test_a_stored_adaptive_state_loads_and_rebuilds_pending_seeds_and_grid():
    path, saved = _stored("adaptive")
    old = saved["state"]
    b = BoundarySearcher({}, 0.4, 0.5, budget=1)
    b.restore(str(path))
    assert _fields(b) == _names(BoundaryState) and b.kind == "BoundarySearcher"
    assert b.budget == 6 and b.members == 6 and b.group_size == 2 and b.max_ahead == 2
    assert b.outcomes == old["outcomes"] and sorted(b.done) == ["b00000", "b00001"]
    assert b.pending == old["pending"]               # rebuilt from the proposals and the settled members
    # version 3: the proposals keep (λ, axis value, seed), the seeds those versions gave (per λ from the base
    # seed); the design spans the λ tried (the start grid and every λ proposed, as the old policy's grid)
    props = b.get_state()["state"]["proposals"]
    assert len(props) == old["issued"] and sorted({lam for lam, _, _ in props.values()}) == old["grid"]
    assert (b.summary()["n"], b.get_state()["state"]["design"]["lo"]) == (2, min(old["grid"]))
    assert sorted(b.seeds) == sorted(s for lam, n in old["seeds"].items() for s in range(n))
    # the next proposal takes the next unused seed at its λ, as the stored seeds say
    b.on_trial_result("2c6aece7", {"rows": [{"plan_id": "b00002", "status": "completed", "test_error": 0.9},
                                            {"plan_id": "b00003", "status": "completed", "test_error": 0.1}]})
    nxt = b.suggest("next")
    members = nxt.get("group", [nxt])
    assert len(members) == 2 and all(m["plan_id"] in ("b00004", "b00005") for m in members)


def test_a_stored_chained_state_loads_with_typed_preparations():
    path, saved = _stored("chained")
    old = saved["state"]
    c = ChainedSearcher([], "unused")
    c.restore(str(path))
    assert _fields(c) == _names(ChainedState) and c.kind == "ChainedSearcher"
    assert all(isinstance(p, Preparation) for p in c.preparations) and len(c.preparations) == 2
    assert c.preparations[0].accept == (">=", 0)
    assert c.accepted == old["accepted"] and c.prep_groups == [[0, 1]]
    assert c.size == old["tune_trials"] == 3 and c.members == 6           # the estimate is rebuilt
    assert c.summary() == {"preps": 2, "accepted": 2, "rejected": 0}


@pytest.mark.parametrize("name", ["grid", "adaptive", "chained"])
def test_a_searcher_pickled_whole_by_the_old_release_loads(name):
    """Tune keeps the searcher object itself in tuner.pkl: an old instance's dict state is migrated."""
    tuner = pickle.loads((DATA / name / "tuner.pkl").read_bytes())
    s = tuner["_tune_config"].search_alg
    assert _fields(s) == _names(s.State) and s.members == 6


def test_state_round_trips_and_a_newer_version_is_refused(tmp_path):
    c = ChainedSearcher([({"seed": 0}, ("<=", 0.3), [{"seed": 0, "lambda": 0.5}])], str(tmp_path))
    c.suggest("t0")
    c.on_trial_complete("t0", {"test_error": 0.1})
    state = c.get_state()
    assert state["version"] == STATE_VERSION and pickle.loads(pickle.dumps(state)) == state
    r = ChainedSearcher([], str(tmp_path))
    r.set_state(state)
    assert r.get_state() == state and r.suggest("k")["parent"] == "p0000"
    with pytest.raises(ValueError, match=r"^searcher state version 99 was written by a newer dgl_ray") as e:
        r.set_state(dict(state, version=99))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="cannot restore a GridSearcher"):
        GridSearcher([]).set_state(state)


def test_migration_of_a_state_saved_before_packing():
    fields = migrate_state({"cls": "GridSearcher", "state": {"live": {"t": "g00001"}, "done": {}, "errored": [],
                                                             "configs": [{}, {}], "next": 2}}, "GridSearcher")
    assert fields["live"] == {"t": ["g00001"]} and fields["ended"] == {}


def test_a_grid_member_id_is_rebuilt_from_the_plan_not_stored():
    packed = [{"group": [{"seed": 0}, {"seed": 1}]}, {"seed": 2}, {"group": [{"seed": 3}, {"seed": 4}]}]
    old = {"cls": "GridSearcher", "state": {"live": {}, "done": {}, "errored": [], "ended": {}, "configs": packed,
                                            "next": 2, "next_member": 3}}
    g = GridSearcher([])
    g.set_state(old)
    assert [m["plan_id"] for m in g.suggest("t")["group"]] == ["g00003", "g00004"]
    assert "next_member" not in g.get_state()["state"]


def test_plan_ids_are_typed_values_with_the_stored_wire_form():
    assert [str(PlanId("g", 3)), str(PlanId("p", 1)), str(PlanId("c", 1, 2)), str(PlanId("b", 7))] == \
        ["g00003", "p0001", "c0001_002", "b00007"]


def test_resume_of_a_sweep_saved_by_a_newer_version_is_one_line_before_ray(tmp_path, capsys):
    import shutil
    from tests._sweep_helpers import one_line_error, run_family
    shutil.copytree(DATA / "grid", tmp_path / "grid")
    (path,) = (tmp_path / "grid").glob("searcher-state-*.pkl")
    saved = pickle.loads(path.read_bytes())
    path.write_bytes(pickle.dumps(dict(saved, version=STATE_VERSION + 1)))
    rc = run_family("coexistence", tmp_path, "--lambdas", "0.3,0.6", "--n", "3", "--epochs", "3", "--num-cpus", "1",
                    "--max-concurrent", "1", "--checkpoint-every", "1", "--progress-interval", "30", "--group-size",
                    "2", "--data-root", "/tmp/dgl-ray-data", "--resume", name="grid")
    err = one_line_error(capsys)
    assert rc == 2 and f"searcher state version {STATE_VERSION + 1} was written by a newer dgl_ray" in err
