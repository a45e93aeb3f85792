"""Refilled slots and early decisions inside a population (issue 19, items 3-4): a member that takes a
freed slot trains as alone (float64, bit for bit on the host), decided members end with their branch,
queued members join in order, a refilling population shrinks once its queue is empty, and one stopped
and continued gives the rows of one that ran through."""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import types

import pytest
import torch
from ray import tune

from dgl_ray import rows as wire
from dgl_ray.batched import BatchedTrials, run_trial
from dgl_ray.config import TrialConfig
from dgl_ray.errors import ConfigError
from dgl_ray.rows import ENDED_STATUSES, group_slots, grouped_result, unpack_group
from dgl_ray.trainer import STATUS_COMPLETED, STATUS_DECIDED, Trial
from dgl_ray.tune import trainable as tr
from dgl_ray.tune.plan import SizeRule
from dgl_ray.tune.searchers import ENDED, GridSearcher
from tests._sweep_helpers import ROOT, finals, interrupt_sweep, parquet

BASE = dict(dataset="digits", epochs=3, K=4, dtype="float64", batch_size=64, device="cpu")
MEMBERS = [dict(BASE, **{"lambda": 0.3 + 0.05 * i}, seed=i, eta=0.4 - 0.05 * (i % 2)) for i in range(5)]

pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


def decide_at(plan: dict):
    """A decision rule for tests: member seed -> (epoch, branch); the calibrated one is dgl_ray.early's."""
    def rule(t: Trial):
        when = plan.get(t.cfg.seed)
        return (when[1], 0.97) if when is not None and t.epoch == when[0] else None
    return rule


@pytest.fixture(scope="module")
def alone(digits):
    out = []
    for c, epochs in zip(MEMBERS, (1, 2, 2, None, None)):    # as far as the refill test's members train
        t = Trial(c, data=digits)
        run_trial(t, max_epochs=epochs)
        out.append(t)
    return out


def _no_time(history):
    nan_free = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: nan_free(v) for k, v in r.items() if k not in ("wall_time", "epoch_time")} for r in history]


def _as_alone(t: Trial, ref: Trial, epochs: int | None = None):
    """t's rows and weights are ref's (alone), bit for bit, over ref's first ``epochs`` evaluations."""
    assert _no_time(t.history) == _no_time(ref.history[:epochs] if epochs else ref.history)
    if epochs is None:
        for (k, x), y in zip(ref.model.state_dict().items(), t.model.state_dict().values()):
            assert torch.equal(x, y), k


def test_a_refilled_slot_trains_as_alone_and_the_population_shrinks(digits, alone):
    """4 slots, 5 members: member 0 is decided at its epoch 1 and member 4 takes its slot (joining the
    population at its epoch 2, its g_v refreshes on other steps than its co-members'); members 1 and 2
    are decided at epoch 2, the queue is empty, so the population drops to 2 slots (3 and 4). Every
    member's rows, and the weights of those that completed, are the trial alone's, in float64."""
    seen = []
    b = BatchedTrials(MEMBERS, data=digits, slots=4,
                      decider=decide_at({0: (1, "not_H"), 1: (2, "H"), 2: (2, "not_H")}))
    assert b.layout == [0, 1, 2, 3] and b.queue == [4] and b.pop.G == 4
    b.run(on_eval=lambda m, i: seen.append((i, m["epoch"], m["status"])), max_epochs=1)
    assert b.trials[0].status == STATUS_DECIDED and b.queue == [4]       # joins at the next epoch boundary
    b.run(on_eval=lambda m, i: seen.append((i, m["epoch"], m["status"])), max_epochs=1)
    assert b.layout == [4, 1, 2, 3] and b.pop.steps[0] == 22 and b.pop.steps[3] == 44
    b.run(on_eval=lambda m, i: seen.append((i, m["epoch"], m["status"])))
    assert b.layout == [4, 3] and b.pop.G == 2 and b.done
    assert (0, 1, "decided") in seen and (4, 3, "completed") in seen and len(seen) == 4 + 4 + 2 + 1
    for i in (3, 4):
        assert b.trials[i].status == STATUS_COMPLETED
        _as_alone(b.trials[i], alone[i])
    for i, e in ((0, 1), (1, 2), (2, 2)):
        t = b.trials[i]
        assert [r["status"] for r in t.history] == ["running"] * (e - 1) + ["decided"]
        assert _unstatused(t.history) == _unstatused(alone[i].history[:e])


def _unstatused(history):
    drop = ("status", "decided_branch", "p_branch")
    return [{k: v for k, v in r.items() if k not in drop} for r in _no_time(history)]


def test_a_refilled_resnet_slot_with_v2_and_w1_trains_as_alone():
    """A CIFAR-shaped model (not padded; V2: g_v member by member on its trusted samples; W1: fresh c_sv
    with BatchNorm statistics put back; augmentation; an LR milestone) refilled at the population's
    second epoch: the joining member is the trial alone (float64, to 1e-9)."""
    cifar = dict(dataset="synthetic-cifar", synthetic_size=[32, 16], batch_size=16, epochs=2, K=3, dtype="float64",
                 lr_milestones=[1], device="cpu", model="resnet18", width=0.125, trusted_fraction=0.2, fresh_csv=True)
    cfgs = [dict(cifar, **{"lambda": 0.3 + 0.2 * i}, seed=i) for i in range(3)]
    b = BatchedTrials(cfgs, slots=2, decider=decide_at({0: (1, "H")}))
    b.run()
    assert b.layout == [2] and [t.status for t in b.trials] == ["decided", "completed", "completed"]   # shrunk: 1 left
    t = Trial(cfgs[2])
    run_trial(t)
    for (k, x), y in zip(t.model.state_dict().items(), b.trials[2].model.state_dict().values()):
        assert torch.allclose(x.double(), y.double(), rtol=1e-9, atol=1e-11), k
    for r1, r2 in zip(t.history, b.trials[2].history, strict=True):
        assert r1["test_error"] == r2["test_error"] and r1["global_step"] == r2["global_step"]
        for k in ("train_loss", "avg_cos", "gs_norm", "gv_norm", "c_sv", "lr", "lambda"):
            assert r1[k] == pytest.approx(r2[k], rel=1e-9, abs=1e-12), k


def test_a_decided_member_reports_its_branch_then_nothing(digits, tmp_path):
    rows = []
    b = BatchedTrials(MEMBERS[:2], data=digits, decider=decide_at({1: (1, "H")}))
    summaries = b.run(on_eval=lambda m, i: rows.append((i, m)))
    decided = [m for i, m in rows if i == 1]
    assert len(decided) == 1 and decided[0]["status"] == "decided"
    assert decided[0]["decided_branch"] == "H" and decided[0]["p_branch"] == 0.97
    assert 0 <= decided[0]["test_error"] <= 1 and decided[0]["epoch"] == 1
    assert [m["status"] for i, m in rows if i == 0] == ["running", "running", "completed"]
    assert "decided_branch" not in rows[-1][1]
    s = summaries[1]
    assert s["status"] == "decided" and s["final_error"] is None and s["decided_branch"] == "H"
    assert s["decided_error"] == decided[0]["test_error"]
    # its checkpoint keeps the decision: a resumed decided trial trains no more and reports nothing
    b.trials[1].save(str(tmp_path / "m1.pt"))
    t = Trial.resume(str(tmp_path / "m1.pt"), data=digits)
    more = []
    run_trial(t, on_eval=lambda m, tr: more.append(m))
    assert more == [] and t.status == STATUS_DECIDED and t.decided_branch == "H" and t.epoch == 1


def test_queued_members_join_in_member_order(digits):
    """Two slots, five members: as slots free up the queue is taken in order, one member a slot."""
    joined = []
    b = BatchedTrials([dict(m, epochs=2) for m in MEMBERS], data=digits, slots=2,
                      decider=decide_at({0: (1, "H"), 2: (1, "not_H")}))
    while not b.done:
        b.run(max_epochs=1)
        joined.append(list(b.layout))
    assert joined == [[0, 1], [2, 1], [3, 4], [3, 4]]
    assert [t.status for t in b.trials] == ["decided", "completed", "decided", "completed", "completed"]


def test_a_refilling_population_stopped_and_continued_gives_the_same_rows(digits, tmp_path):
    """What the Ray layer does for a refilling Tune trial: every member's checkpoint and the layout
    after an epoch, restored into a new population (queued members still at epoch 0): the same rows
    and weights as the population that ran through."""
    members = [dict(m, epochs=2) for m in MEMBERS]
    rule = decide_at({0: (1, "H"), 2: (1, "not_H")})
    through = BatchedTrials(members, data=digits, slots=2, decider=rule)
    through.run()
    b = BatchedTrials(members, data=digits, slots=2, decider=rule)
    b.run(max_epochs=2)
    layout = list(b.layout)
    for i, t in enumerate(b.trials):
        t.save(str(tmp_path / f"m{i}.pt"))
    torch.manual_seed(99)      # disturb the global RNG between stop and continue
    restored = [Trial.resume(str(tmp_path / f"m{i}.pt"), data=digits) for i in range(len(members))]
    b2 = BatchedTrials(trials=restored, slots=2, layout=layout, decider=rule)
    assert b2.queue == [3, 4] and b2.layout == [2, 1]
    b2.run()
    for t1, t2 in zip(through.trials, b2.trials):
        assert _no_time(t1.history) == _no_time(t2.history) and t1.status == t2.status
        for x, y in zip(t1.model.state_dict().values(), t2.model.state_dict().values()):
            assert torch.equal(x, y)


def test_slots_and_layout_are_checked(digits):
    with pytest.raises(ConfigError, match="slots=0 must be an integer >= 1"):
        BatchedTrials(MEMBERS[:2], data=digits, slots=0)
    t = [Trial(m, data=digits) for m in MEMBERS[:2]]
    with pytest.raises(ConfigError, match=r"layout=\[1, 1\]"):
        BatchedTrials(trials=t, slots=2, layout=[1, 1])


# ---- the Tune trainable: a packed config with slots ------------------------------------------------------

@pytest.fixture
def tune_calls(monkeypatch):
    """Tune's session functions replaced by a recorder (as tests/test_trainable.py): rows and each
    checkpoint, copied, so that a later call can be restored from any of them."""
    keep = tempfile.mkdtemp(prefix="refill-ckpts-")
    rec = {"rows": [], "ckpts": [], "restore": None}

    def report(result, checkpoint=None):
        rec["rows"].extend(dict(r) for r in wire.result_rows(result))
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                rec["ckpts"].append(shutil.copytree(d, os.path.join(keep, f"checkpoint_{len(rec['ckpts']):06d}")))

    monkeypatch.setattr(tune, "report", report)
    monkeypatch.setattr(tune, "get_checkpoint", lambda: rec["restore"] and tune.Checkpoint.from_directory(rec["restore"]))
    monkeypatch.setattr(tr, "_node_info", lambda: {"host": "h", "worker_pid": 1, "node_id": None})
    monkeypatch.setattr(tune, "get_context", lambda: types.SimpleNamespace(get_trial_id=lambda: "abc_00001"))
    n = torch.get_num_threads()
    yield rec
    torch.set_num_threads(n)
    shutil.rmtree(keep, ignore_errors=True)


def test_a_refilling_tune_trial_resumed_from_its_checkpoint_reports_the_same_rows(tune_calls):
    """Three members, two slots: member 2 waits until 0 and 1 complete, then trains its 2 epochs in a slot
    (its rows are its own, as alone). Restored from the checkpoint of population epoch 2 (0 and 1 done,
    2 queued) and of epoch 3 (2 half way), the trial reports the uninterrupted rows from there."""
    base = dict(dataset="digits", epochs=2, batch_size=128, device="cpu", family="s1", experiment="x")
    members = [dict(base, **{"lambda": 0.3 + 0.2 * i}, seed=i) for i in range(3)]
    config = wire.pack_group(members, slots=2)
    assert config["slots"] == 2 and group_slots(config) == 2 and len(unpack_group(config)) == 3
    tr.dgl_trainable(config)
    full = [(r["member"], r["epoch"], r["status"], r["test_error"]) for r in tune_calls["rows"]]
    assert [m[:3] for m in full] == [(0, 1, "running"), (1, 1, "running"), (0, 2, "completed"),
                                     (1, 2, "completed"), (2, 1, "running"), (2, 2, "completed")]
    assert all(r["group_size"] == 3 for r in tune_calls["rows"])
    ckpts = list(tune_calls["ckpts"])
    assert len(ckpts) == 4 and "population.json" in os.listdir(ckpts[1])
    with open(os.path.join(ckpts[1], "population.json")) as fh:
        assert json.load(fh) == {"layout": [0, 1]}
    for k, after in ((1, full[4:]), (2, full[5:])):
        tune_calls["rows"].clear()
        tune_calls["restore"] = ckpts[k]
        tr.dgl_trainable(config)
        assert [(r["member"], r["epoch"], r["status"], r["test_error"]) for r in tune_calls["rows"]] == after
    tune_calls["rows"].clear()
    tune_calls["restore"] = None
    tr.dgl_trainable(dict(members[2]))          # member 2 alone: the same errors
    assert [r["test_error"] for r in tune_calls["rows"]] == [m[3] for m in full[4:]]


# ---- the trial option and the grid searcher ------------------------------------------------------------

def test_a_decided_member_has_ended_for_the_searcher():
    """The searchers' ENDED is rows.ENDED_STATUSES: a Tune trial whose members are decided or completed
    settles, the decided member with the error at its decision (never read as a final error there)."""
    assert ENDED == ENDED_STATUSES and "decided" in ENDED
    g = GridSearcher([dict(BASE, **{"lambda": 0.3}, seed=s) for s in range(2)])
    g.pack(SizeRule(given=2, on_gpu=False))
    members = [m["plan_id"] for m in unpack_group(g.suggest("t0"))]
    g.on_trial_result("t0", grouped_result([
        {"plan_id": members[0], "status": "decided", "decided_branch": "H", "p_branch": 0.98, "test_error": 0.7},
        {"plan_id": members[1], "status": "completed", "test_error": 0.2}]))
    assert "t0" not in g._state.live and g.done == {members[0]: 0.7, members[1]: 0.2}


def test_decide_early_must_be_a_number():
    with pytest.raises(ConfigError, match="decide_early=True must be a number"):
        TrialConfig.from_dict(dict(BASE, decide_early=True, **{"lambda": 0.3}))


@pytest.mark.parametrize("args,needle", [
    (["--decide-early", "0.9"], "--decide-early 0.9: must be a number in ["),
    (["--decide-early", "0.05", "--dataset", "cifar100"], "no calibrated branch classifier for dataset 'cifar100'"),
])
def test_decide_early_flag_errors_are_one_line_exit_2(args, needle, tmp_path):
    """``--decide-early δ`` on train and on every family (trial_flags): a δ the calibration does not
    allow, or a data set without a classifier, is one line, exit 2, before anything trains or Ray starts."""
    pytest.importorskip("dgl_ray.early")      # the early-decision slice's classifier (merged separately)
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    for cmd in (["dgl_ray.train", "--lambda", "0.3"], ["dgl_ray.sweeps.scan", "--dry-run", "--storage", str(tmp_path)]):
        r = subprocess.run([sys.executable, "-m", *cmd, *args], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env=env)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], \
            (cmd, r.stderr)


def test_a_grid_with_early_decisions_packs_queued_groups():
    """GridSearcher with ``decide_early``: 2 x G members per Tune trial in G slots (group size 2: 4 members,
    slots 2); the Tune config each suggest hands out carries its slots; without decide_early, no queue."""
    pytest.importorskip("dgl_ray.early")
    cfgs = [dict(BASE, **{"lambda": 0.3 + 0.02 * i}, seed=0, decide_early=0.05) for i in range(10)]
    g = GridSearcher(cfgs)
    note = g.pack(SizeRule(given=2, on_gpu=False))
    assert "queued" in note[0]
    handed = [g.suggest(f"t{i}") for i in range(3)]
    assert [len(unpack_group(c)) for c in handed] == [4, 4, 2]
    assert [group_slots(c) for c in handed] == [2, 2, None]      # the last group fits its slots
    assert [m["plan_id"] for c in handed for m in unpack_group(c)] == [f"g{i:05d}" for i in range(10)]
    plain = GridSearcher([{k: v for k, v in c.items() if k != "decide_early"} for c in cfgs])
    plain.pack(SizeRule(given=2, on_gpu=False))
    assert group_slots(plain.suggest("t0")) is None and plain.size == 5


# ---- real Ray: a refilling sweep killed and resumed ----------------------------------------------------

def _refill_sweep(storage, name):
    return [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", "0.40,0.50", "--n", "4", "--epochs", "4",
            "--decide-early", "0.05", "--group-size", "2", "--checkpoint-every", "1", "--num-cpus", "2",
            "--max-failures", "0", "--progress-interval", "2", "--storage", str(storage), "--name", name]


@pytest.mark.slow
def test_a_refilling_sweep_interrupted_and_resumed_reports_the_rows_of_one_that_ran_through(tmp_path):
    """A grid with --decide-early: 8 digits trials in 2 Tune trials of 4 members and 2 slots. Interrupted
    (SIGINT) once a Tune trial's queued members train, then resumed: every (plan trial, epoch) has the
    status and error of the same sweep run through, each trial ended once (slow: about 2 minutes)."""
    pytest.importorskip("dgl_ray.early")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(_refill_sweep(tmp_path, "through"), cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]

    def queued_training() -> bool:     # a population has reported a queued member's epoch (member >= 2)
        for rj in (tmp_path / "cut").glob("*/result.json"):
            if '"member": 2' in rj.read_text() or '"member": 3' in rj.read_text():
                return True
        return False

    rc, out = interrupt_sweep(_refill_sweep(tmp_path, "cut"), queued_training, signal.SIGINT)
    assert rc == 130, out[-3000:]
    r = subprocess.run(_refill_sweep(tmp_path, "cut") + ["--resume"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    key = lambda df: df.set_index(["plan_id", "epoch"])[["status", "test_error"]].sort_index()
    through, cut = parquet(tmp_path, "through"), parquet(tmp_path, "cut")
    assert cut.groupby(["run", "epoch"]).size().max() == 1              # no epoch of a run reported twice
    assert key(cut).equals(key(through))
    end = finals(cut)
    assert len(end) == 8 and end["plan_id"].nunique() == 8 and (end["group_size"] == 4).all()
    assert set(end["status"]) <= {"completed", "decided"}


def test_a_population_with_a_slot_each_drops_its_decided_members(digits, alone):
    """Members that may be decided early (``decide_early``: an adaptive population on CPUs, a grid's last Tune
    trial), a slot each, none queued: decided members' slots are dropped at the next epoch boundary (the
    population shrinks, as a refilling one does once its queue is empty), with ``slots`` given or not;
    without decide_early they stay, frozen, to the end. The survivor trains as alone."""
    rule = {0: (1, "not_H"), 1: (1, "H"), 2: (1, "not_H")}
    early = [dict(c, decide_early=0.05) for c in MEMBERS[:4]]
    for slots in (4, None):
        b = BatchedTrials(early, data=digits, slots=slots, decider=decide_at(rule))
        assert b.queue == [] and b.pop.G == 4 and b.refills
        b.run(max_epochs=2)
        assert b.layout == [3] and b.pop.G == 2              # padded to 2 on the host (batched.padded_size)
    b.run()
    _as_alone(b.trials[3], alone[3])
    frozen = BatchedTrials(MEMBERS[:4], data=digits, decider=decide_at(rule))
    frozen.run(max_epochs=2)
    assert frozen.layout == [0, 1, 2, 3] and frozen.pop.G == 4 and not frozen.refills
