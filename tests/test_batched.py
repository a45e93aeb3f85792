"""BatchedTrials (G trials as one grouped model) against Trial run alone and the notebook's step."""
import copy
import math

import pytest
import torch

from dgl_ray.batched import BatchedTrials, run_group, run_trial
from dgl_ray.errors import ConfigError
from dgl_ray.step import ReferenceDualGradient
from dgl_ray.trainer import STATUS_COMPLETED, STATUS_DIVERGED, Trial

BASE = dict(dataset="digits", epochs=2, K=4, dtype="float64", batch_size=64)
CONFIGS = [dict(BASE, **{"lambda": 0.3}, seed=0), dict(BASE, **{"lambda": 0.5}, seed=1, eta=0.2),
           dict(BASE, seed=7, lambda_schedule=[{"kind": "ramp", "start": 0.45, "stop": 0.6, "epochs": 2}],
                lr_milestones=[1], epochs=None)]
KEYS = ("train_loss", "avg_cos", "gs_norm", "gv_norm", "lambda", "lr")


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


@pytest.fixture(scope="module")
def alone(digits):
    out = []
    for c in CONFIGS:
        t = Trial(c, data=digits)
        run_trial(t)
        out.append(t)
    return out


def _same_state(t1, t2, rtol=1e-9, atol=1e-11):
    for (k, a), b in zip(t1.model.state_dict().items(), t2.model.state_dict().values()):
        assert torch.allclose(a.double(), b.double(), rtol=rtol, atol=atol), (k, (a.double() - b.double()).abs().max())


def _same_rows(h1, h2):
    assert len(h1) == len(h2)
    for r1, r2 in zip(h1, h2):
        assert r1["epoch"] == r2["epoch"] and r1["global_step"] == r2["global_step"] and r1["status"] == r2["status"]
        assert r1["test_error"] == r2["test_error"] or (math.isnan(r1["test_error"]) and math.isnan(r2["test_error"]))
        for k in KEYS:
            assert r1[k] == pytest.approx(r2[k], rel=1e-9, abs=1e-12), k


def test_batched_equals_trials_alone(digits, alone):
    rows = []
    b = BatchedTrials(CONFIGS, data=digits)
    summaries = b.run(on_eval=lambda m, i: rows.append((i, m["epoch"])))
    assert sorted(rows) == [(i, e) for i in range(3) for e in (1, 2)]
    for t, bt, s in zip(alone, b.trials, summaries):
        _same_state(t, bt)
        _same_rows(t.history, bt.history)
        assert s["status"] == STATUS_COMPLETED and s["final_error"] == t.summary()["final_error"]
        assert s["seed"] == t.cfg.seed and s["global_step"] == t.stepper.step == 2 * 22
        # optimizer state and the g_v cache went back into the Trial objects too
        for p1, p2 in zip(t.model.parameters(), bt.model.parameters()):
            m1, m2 = t.opt.state[p1]["momentum_buffer"], bt.opt.state[p2]["momentum_buffer"]
            assert torch.allclose(m1, m2, rtol=1e-9, atol=1e-11)
        for g1, g2 in zip(t.stepper.cached_gv, bt.stepper.cached_gv):
            assert torch.allclose(g1, g2, rtol=1e-9, atol=1e-12)


def test_batched_equals_reference_step(digits):
    """The contract: each trial of the group against the notebook's step fed that trial's batches."""
    cfgs = [dict(BASE, **{"lambda": 0.4}, seed=3, epochs=1), dict(BASE, **{"lambda": 0.55}, seed=4, epochs=1)]
    b = BatchedTrials(cfgs, data=digits)
    refs = []
    for t in b.trials:
        m = copy.deepcopy(t.model)
        refs.append((m, ReferenceDualGradient(m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9,
                                                                 weight_decay=5e-4), 4)))
    b.run()
    d = b.data
    for t, (m, ref), c in zip(b.trials, refs, cfgs):
        perm = torch.randperm(len(d.y_train), generator=torch.Generator().manual_seed(c["seed"]))
        for s in range(0, len(perm), 64):
            idx = perm[s:s + 64]
            ref.step(d.normalise(d.x_train[idx], torch.float64), t.y_noisy[idx], d.y_train[idx], c["lambda"])
        assert ref.state["step"] == t.stepper.step == 22
        for p1, p2 in zip(m.parameters(), t.model.parameters()):
            assert torch.allclose(p1, p2, rtol=1e-9, atol=1e-11), (p1 - p2).abs().max()
        for b1, b2 in zip(m.buffers(), t.model.buffers()):
            assert torch.allclose(b1.double(), b2.double(), rtol=1e-9, atol=1e-11)


def test_diverged_trial_leaves_the_group(digits, alone):
    b = BatchedTrials(CONFIGS, data=digits)
    with torch.no_grad():
        b.packed.views(b.pop.flat)[8][1, 0, 0] = float("nan")     # trial 1's head: non-finite from the first step
    rows = []
    b.run(on_eval=lambda m, i: rows.append((i, m["epoch"], m["status"])), max_epochs=1)
    assert b.active == [0, 2] and b.G == 3 and b.pop.G == 4     # the diverged slot stays, frozen (+ 1 padding)
    b.run(on_eval=lambda m, i: rows.append((i, m["epoch"], m["status"])))
    assert (1, 1, STATUS_DIVERGED) in rows and not any(i == 1 and e == 2 for i, e, _ in rows)
    assert b.trials[1].summary()["status"] == STATUS_DIVERGED and b.trials[1].summary()["final_error"] is None
    for i in (0, 2):                              # the others are untouched by its NaNs
        _same_state(alone[i], b.trials[i])
        _same_rows(alone[i].history, b.trials[i].history)


def test_checkpoint_of_a_batched_trial_resumes_in_trial(digits, alone, tmp_path):
    b = BatchedTrials(CONFIGS, data=digits)
    b.run(max_epochs=1)
    b.trials[2].save(str(tmp_path / "t2.pt"))
    t = Trial.resume(str(tmp_path / "t2.pt"), data=digits)
    run_trial(t)
    _same_state(alone[2], t)
    _same_rows(alone[2].history, t.history)


def test_a_group_stopped_and_continued_as_a_group_gives_the_same_numbers(digits, alone, tmp_path):
    """What the Ray layer does for one Tune trial per group: checkpoint every member, restore them,
    continue them as one BatchedTrials (weights, BN statistics, momentum, cached g_v, step, RNGs)."""
    b = BatchedTrials(CONFIGS, data=digits)
    b.run(max_epochs=1)
    for i, t in enumerate(b.trials):
        t.save(str(tmp_path / f"m{i}.pt"))
    restored = []
    for i, c in enumerate(CONFIGS):
        t = Trial(c, data=digits)
        t.load_state_dict(torch.load(tmp_path / f"m{i}.pt", weights_only=False))
        restored.append(t)
    torch.manual_seed(1234)   # disturb the global RNG between stop and continue
    b2 = BatchedTrials(trials=restored)
    assert b2.epoch == 1 and b2.step == 22 and all(b2.pop.has_gv)
    b2.run()
    for i in range(3):
        _same_state(alone[i], b2.trials[i])
        _same_rows(alone[i].history, b2.trials[i].history)


def test_members_at_different_epochs_continue_each_on_its_own_clock(digits, alone):
    """Per-member clocks (issue 19): a member one epoch ahead and one at epoch 0 (22 steps an epoch, K 4:
    their g_v refreshes fall on different steps) continue as one population; each is the trial alone,
    bit for bit (it was refused before members had their own epoch and step counter)."""
    a = Trial(CONFIGS[0], data=digits)
    b = Trial(CONFIGS[1], data=digits)
    run_trial(a, max_epochs=1)
    group = BatchedTrials(trials=[a, b])
    assert group.pop.steps[:2] == [22, 0]
    group.run()
    for i, t in ((0, a), (1, b)):
        assert _strip_time(t.history) == _strip_time(alone[i].history)
        for (k, x), y in zip(alone[i].model.state_dict().items(), t.model.state_dict().values()):
            assert torch.equal(x, y), (i, k)


def test_float32_default_path_close_to_trial(digits):
    cfgs = [dict(dataset="digits", **{"lambda": 0.3}, seed=s, epochs=1) for s in (0, 1)]
    summaries = run_group(cfgs, data=digits)
    b = BatchedTrials(cfgs, data=digits)
    b.run()
    for c, bt, s in zip(cfgs, b.trials, summaries):
        t = Trial(c, data=digits)
        run_trial(t)
        _same_state(t, bt, rtol=1e-3, atol=1e-4)
        assert s["final_error"] == pytest.approx(t.summary()["final_error"], abs=3 / 397)


@pytest.mark.parametrize("bad", [dict(model="resnet18"), dict(batch_size=16), dict(K=8), dict(fresh_csv=True),
                                 dict(trusted_fraction=0.05)])
def test_group_must_share_shapes(digits, bad):
    with pytest.raises(ConfigError):
        BatchedTrials([dict(BASE, **{"lambda": 0.3}, seed=0), dict(BASE, **{"lambda": 0.3}, seed=1, **bad)], data=digits)


def test_group_configs_splits_by_shape():
    from dgl_ray.batched import group_configs
    cfgs = [dict(BASE, **{"lambda": 0.3}, seed=s) for s in range(5)] + [dict(BASE, **{"lambda": 0.3}, seed=0, batch_size=32),
                                                              dict(BASE, **{"lambda": 0.3}, seed=0, model="resnet18")]
    cfgs += [dict(BASE, **{"lambda": 0.3}, seed=1, model="resnet18", width=0.125), dict(BASE, **{"lambda": 0.3}, seed=2, trusted_fraction=0.1)]
    assert group_configs(cfgs, max_size=3) == [[0, 1, 2], [3, 4], [5], [6], [7], [8]]


# every model packs: CIFAR-shaped members with V2 trusted subsets, W1 fresh c_sv, augmentation and an
# LR milestone, packed against each alone (float64); tiny synthetic data keeps it fast
CIFAR = dict(dataset="synthetic-cifar", synthetic_size=[32, 16], batch_size=16, epochs=2, K=2, dtype="float64",
             lr_milestones=[1], device="cpu")


@pytest.mark.parametrize("extra", [
    dict(model="resnet18", width=0.125, trusted_fraction=0.1, fresh_csv=True),
    dict(model="resnet34", width=0.0625),
    pytest.param(dict(model="simplecnn", fresh_csv=True), marks=pytest.mark.slow),
    pytest.param(dict(model="vgg11-p2", trusted_fraction=0.2), marks=pytest.mark.slow),
    pytest.param(dict(model="vgg11"), marks=pytest.mark.slow),
    pytest.param(dict(model="simplecnn-p2"), marks=pytest.mark.slow),
])
def test_every_model_packs_as_it_runs_alone(extra):
    cfgs = [dict(CIFAR, **extra, **{"lambda": 0.3}, seed=0), dict(CIFAR, **extra, **{"lambda": 0.6}, seed=1, eta=0.2)]
    b = BatchedTrials(cfgs)
    b.run()
    for c, bt in zip(cfgs, b.trials):
        t = Trial(c)
        run_trial(t)
        _same_state(t, bt)
        _same_rows(t.history, bt.history)
        if extra.get("fresh_csv"):
            assert [r["c_sv"] for r in t.history] == pytest.approx([r["c_sv"] for r in bt.history], rel=1e-9)
            assert all(math.isfinite(r["c_sv"]) for r in bt.history)


def test_packed_resnet_stopped_and_continued_with_a_diverging_member(tmp_path):
    extra = dict(model="resnet18", width=0.125, trusted_fraction=0.1, epochs=3)
    cfgs = [dict(CIFAR, **extra, **{"lambda": l}, seed=s) for l, s in ((0.3, 0), (0.5, 1), (0.7, 2))]
    alone = []
    for c in cfgs:
        t = Trial(c)
        run_trial(t)
        alone.append(t)
    b = BatchedTrials(cfgs)
    with torch.no_grad():
        b.packed.views(b.pop.flat)[-1][1, 0] = float("nan")       # member 1's head bias
    b.run(max_epochs=1)
    assert b.active == [0, 2] and b.trials[1].status == STATUS_DIVERGED
    for i, t in enumerate(b.trials):
        t.save(str(tmp_path / f"m{i}.pt"))
    restored = [Trial.resume(str(tmp_path / f"m{i}.pt")) for i in range(3)]
    torch.manual_seed(77)
    b2 = BatchedTrials(trials=restored)
    assert b2.active == [0, 2]
    b2.run()
    for i in (0, 2):
        _same_state(alone[i], b2.trials[i])
        _same_rows(alone[i].history, b2.trials[i].history)
    assert b2.trials[1].summary()["status"] == STATUS_DIVERGED


@pytest.mark.parametrize("dtype,width", [("float32", 1.0), ("float64", 1.0), ("float32", 4.0)])
def test_member_is_the_same_bits_alone_and_at_any_size_and_position(digits, dtype, width):
    """Reproducible wherever it ran (digits TinyCNN, CPU): a trial's numbers are the same bits alone
    (run_trial) and packed, in populations of 2, 3 and 5, first, in the middle and last (the last
    member of an odd population sat in a vector tail before ``padded_size``), beside other co-members,
    also when one of them diverges."""
    base = dict(dataset="digits", epochs=2, device="cpu", dtype=dtype, width=width)
    me = dict(base, **{"lambda": 0.45}, seed=3)
    others = [dict(base, **{"lambda": 0.2 + 0.1 * i}, seed=9 + i) for i in range(4)]
    alone = Trial(me, data=digits)
    run_trial(alone)
    for G, pos in [(2, 1), (3, 2), (5, 0), (5, 4)]:
        b = BatchedTrials(others[:pos] + [me] + others[pos:G - 1], data=digits)
        assert b.G == G and (b.G + b.pad) % 2 == 0
        if pos != 0:
            with torch.no_grad():
                b.packed.views(b.pop.flat)[0][0] = float("nan")       # a co-member diverges in the first epoch
        b.run()
        if pos != 0:
            assert b.trials[0].status == STATUS_DIVERGED
        for (k, x), y in zip(alone.model.state_dict().items(), b.trials[pos].model.state_dict().values()):
            assert torch.equal(x, y), (G, pos, k)
        assert _strip_time(alone.history) == _strip_time(b.trials[pos].history), (G, pos)


def test_padding_is_for_host_populations_of_packing_models():
    """``padded_size``: populations of the digits TinyCNN on the host run at an even size of at least 2
    that fills whole vectors (float32 width 0.5: 4 channels a member, 4 members to a 16-lane vector); GPU
    populations and the CIFAR models (one trial per process on a CPU by default) are not padded."""
    from dgl_ray.batched import padded_size
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert [padded_size(g, "tinycnn", [8, 16], torch.float32, cpu) for g in (1, 2, 3, 25, 26)] == [2, 2, 4, 26, 26]
    assert [padded_size(g, "tinycnn", [4, 8], torch.float32, cpu) for g in (1, 5)] == [4, 8]
    assert [padded_size(g, "tinycnn", [8, 16], torch.float64, cpu) for g in (1, 3)] == [2, 4]
    assert [padded_size(g, "tinycnn", [32, 64], torch.float32, cpu) for g in (1, 3, 4)] == [2, 4, 4]
    assert padded_size(3, "tinycnn", [8, 16], torch.float32, gpu) == 3
    assert padded_size(1, "resnet18", [8, 16, 32, 64], torch.float32, cpu) == 1


def _strip_time(h):
    nan_free = lambda v: "nan" if isinstance(v, float) and math.isnan(v) else v
    return [{k: nan_free(v) for k, v in r.items() if k not in ("wall_time", "epoch_time")} for r in h]


def test_run_group_packs_a_mix_and_splits_the_rest(digits):
    """The public entry point: a mix of models and data sets, each group trained as one population,
    summaries in config order equal to each trial alone (float64)."""
    cfgs = [dict(BASE, **{"lambda": 0.3}, seed=0, epochs=1), dict(CIFAR, model="resnet18", width=0.125, **{"lambda": 0.4}, seed=1, epochs=1),
            dict(BASE, **{"lambda": 0.5}, seed=2, epochs=1), dict(BASE, **{"lambda": 0.5}, seed=3, epochs=1, batch_size=128)]
    seen = []
    out = run_group(cfgs, on_eval=lambda m, i: seen.append(i), data=digits)
    assert sorted(seen) == [0, 1, 2, 3]
    for c, s in zip(cfgs, out):
        t = Trial(c, data=digits if c["dataset"] == "digits" else None)
        assert s["final_error"] == pytest.approx(run_trial(t)["final_error"], abs=1e-12) and s["seed"] == c["seed"]


def test_images_normalised_once_are_the_per_batch_bits(digits):
    """Without augmentation a population normalises its training images once and gathers rows; the
    values are the per-batch normalisation's, bit for bit (float32 and float64); a data set too big
    for that copy is normalised per batch."""
    import dgl_ray.batched as batched
    for dtype in ("float32", "float64"):
        b = BatchedTrials([dict(dataset="digits", epochs=1, dtype=dtype, seed=s, **{"lambda": 0.3}) for s in range(2)], data=digits)
        idx = torch.randperm(len(digits.y_train))[:40].view(20, 2)
        per_batch = digits.normalise(digits.x_train[idx], b.dtype)
        assert torch.equal(batched._rows(b._x_train, idx), per_batch)
    small, batched.NORMALISED_COPY_MAX_BYTES = batched.NORMALISED_COPY_MAX_BYTES, 1024
    try:
        assert BatchedTrials([dict(dataset="digits", epochs=1, seed=0, **{"lambda": 0.3})], data=digits)._x_train is None
    finally:
        batched.NORMALISED_COPY_MAX_BYTES = small
