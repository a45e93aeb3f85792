"""The population update rule (dgl_ray.batched.Population) against the seed notebook's step, for every
model, member by member, in float64: cache refreshes, a λ jump, an LR milestone, BatchNorm statistics."""
import copy

import pytest
import torch

from dgl_ray.batched import Population, run_trial
from dgl_ray.models import build_model
from dgl_ray.packing import PackedNet
from dgl_ray.step import ReferenceDualGradient
from dgl_ray.trainer import Trial


pytestmark = pytest.mark.usefixtures("one_thread")   # tests/conftest.py


# (model, width, image shape, batch, steps): small widths and a few dozen images keep it fast
MODELS = [("tinycnn", 1.0, (1, 8, 8), 16, 9), ("tinycnn", 2.0, (3, 8, 8), 16, 9),
          ("resnet18", 0.125, (3, 8, 8), 8, 7), ("resnet34", 0.0625, (1, 8, 8), 8, 5),
          ("simplecnn", 1.0, (3, 32, 32), 6, 5), pytest.param("simplecnn-p2", 1.0, (3, 32, 32), 2, 4, marks=pytest.mark.slow),
          pytest.param("vgg11", 1.0, (3, 32, 32), 2, 4, marks=pytest.mark.slow),
          pytest.param("vgg11-p2", 1.0, (3, 32, 32), 3, 4, marks=pytest.mark.slow)]


def _members(name, width, shape, G):
    models = []
    for g in range(G):
        torch.manual_seed(10 + g)
        models.append(build_model(name, 10, shape[0], width).double())
    return models


def _run_both_on(device, *args, **kw):
    """The same comparison with the population on ``device`` (the reference stays on the CPU)."""
    return _run_both(*args, device=device, **kw)


def _run_both(name, width, shape, B, steps, G=None, K=3, lams=(0.3, 0.7, 0.0), jump_at=4, milestone_at=5,
              device="cpu"):
    G = G or (2 if shape[1] == 32 else 3)       # the 32x32 models are heavy in float64
    models = _members(name, width, shape, G)
    refs = [copy.deepcopy(m) for m in models]
    seeds = [100 + g for g in range(G)]
    models = [m.to(device) for m in models]
    pop = Population.from_models(PackedNet(models[0], name), models, K, 0.9, 5e-4,
                                 [torch.Generator(device=device).manual_seed(s) for s in seeds])
    data = torch.Generator().manual_seed(1)
    batches = []
    for step in range(steps):
        x = torch.randn(B, G, *shape, generator=data, dtype=torch.float64)
        bc = torch.randint(0, 10, (B, G), generator=data)
        bn = torch.where(torch.rand(B, G, generator=data) < 0.4, torch.randint(0, 10, (B, G), generator=data), bc)
        lam = torch.tensor([l if step < jump_at else 1 - l for l in lams[:G]], dtype=torch.float64)
        lr = torch.tensor([0.05 * (g + 1) * (0.1 if step >= milestone_at else 1) for g in range(G)], dtype=torch.float64)
        batches.append((x, bn, bc, lam, lr))
        out = pop.step_batch(*(t.to(device) for t in (x, bn, bc, lam, lr)))
        batches[-1] += ({k: v.cpu() for k, v in out.items()},)
    # each member alone through the notebook's step, with the global RNG seeded as its dropout generator
    views = pop.packed.views(pop.flat.detach().cpu())
    buffers = [b.cpu() for b in pop.buffers]
    for g, ref_m in enumerate(refs):
        torch.manual_seed(seeds[g])
        opt = torch.optim.SGD(ref_m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        ref = ReferenceDualGradient(ref_m, opt, K)
        for step, (x, bn, bc, lam, lr, out) in enumerate(batches):
            for group in opt.param_groups:
                group["lr"] = float(lr[g])
            r = ref.step(x[:, g], bn[:, g], bc[:, g], float(lam[g]))
            assert torch.allclose(r["loss_s"], out["loss_s"][g], rtol=1e-10, atol=1e-12), (g, step)
            assert torch.allclose(r["cos"], out["cos"][g], rtol=0, atol=1e-10), (g, step)
        assert ref.state["step"] == pop.step == steps
        for (n, p), v in zip(ref_m.named_parameters(), views):
            assert torch.allclose(p, v[g], rtol=1e-9, atol=1e-11), (name, g, n, (p - v[g]).abs().max())
        for (n, b), pb in zip(ref_m.named_buffers(), buffers):   # BN statistics: two forwards on refreshes
            assert torch.allclose(b.double(), pb[g].double(), rtol=1e-9, atol=1e-11), (name, g, n)
        gv = pop.gv[g].cpu()
        assert torch.allclose(gv, ref.state["gv"], atol=1e-12)
    return pop, refs


@pytest.mark.parametrize("name,width,shape,B,steps", MODELS)
def test_population_equals_reference_per_member(name, width, shape, B, steps):
    _run_both(name, width, shape, B, steps)


def test_population_of_one_equals_reference():
    _run_both("tinycnn", 1.0, (1, 8, 8), 16, 7, G=1, K=2, lams=(1.0,))


def test_comparison_detects_a_wrong_mix():
    """The comparison above can fail: a population that never refreshes its cache differs."""
    with pytest.raises(AssertionError):
        models = _members("tinycnn", 1.0, (1, 8, 8), 1)
        ref_m = copy.deepcopy(models[0])
        pop = Population.from_models(PackedNet(models[0]), models, 1000, 0.9, 5e-4, [torch.Generator()])
        ref = ReferenceDualGradient(ref_m, torch.optim.SGD(ref_m.parameters(), lr=0.1, momentum=0.9,
                                                           weight_decay=5e-4), 2)
        g = torch.Generator().manual_seed(1)
        for _ in range(4):
            x = torch.randn(16, 1, 1, 8, 8, generator=g, dtype=torch.float64)
            y = torch.randint(0, 10, (16, 1), generator=g)
            ref.step(x[:, 0], torch.roll(y, 1, 0)[:, 0], y[:, 0], 0.5)
            pop.step_batch(x, torch.roll(y, 1, 0), y, torch.tensor([0.5], dtype=torch.float64),
                           torch.tensor([0.1], dtype=torch.float64))
        for p, v in zip(ref_m.parameters(), pop.packed.views(pop.flat.detach())):
            assert torch.allclose(p, v[0], rtol=1e-9, atol=1e-11)


def test_trial_epoch_equals_reference_loop(digits):
    """The whole trainer path (data order, normalisation, LR, noisy labels) against the notebook's
    loop fed the same batches: three epochs, K=16, float64."""
    cfg = dict(dataset="digits", **{"lambda": 0.4}, seed=3, epochs=3, dtype="float64", batch_size=64)
    trial = Trial(cfg, data=digits)
    ref_model = copy.deepcopy(trial.model)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    ref = ReferenceDualGradient(ref_model, ref_opt, 16)
    gen = torch.Generator().manual_seed(3)
    d = trial.data
    for _ in range(3):
        perm = torch.randperm(len(d.y_train), generator=gen)
        for s in range(0, len(perm), 64):
            idx = perm[s:s + 64]
            ref.step(d.normalise(d.x_train[idx], torch.float64), trial.y_noisy[idx], d.y_train[idx], 0.4)
    run_trial(trial)
    assert trial.stepper.step == ref.state["step"] == 3 * 22
    for p1, p2 in zip(ref_model.parameters(), trial.model.parameters()):
        assert torch.allclose(p1, p2, rtol=1e-9, atol=1e-11)
