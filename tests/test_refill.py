"""Refilled slots and early decisions inside a population (issue 19, items 3-4): a member that takes a
freed slot trains as alone (float64, bit for bit on the host), decided members end with their branch,
queued members join in order, a refilling population shrinks once its queue is empty, and one stopped
and continued gives the rows of one that ran through."""
import math

import pytest
import torch

from dgl_ray.batched import BatchedTrials, run_trial
from dgl_ray.trainer import STATUS_COMPLETED, STATUS_DECIDED, Trial

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
    for c in MEMBERS:
        t = Trial(c, data=digits)
        run_trial(t)
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
    from dgl_ray.errors import ConfigError
    with pytest.raises(ConfigError, match="slots=0 must be an integer >= 1"):
        BatchedTrials(MEMBERS[:2], data=digits, slots=0)
    t = [Trial(m, data=digits) for m in MEMBERS[:2]]
    with pytest.raises(ConfigError, match=r"layout=\[1, 1\]"):
        BatchedTrials(trials=t, slots=2, layout=[1, 1])
