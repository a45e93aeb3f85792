"""The fast dual-gradient step against the seed notebook's step, line for line."""
import copy

import pytest
import torch

from dgl_ray.models import build_model
from dgl_ray.step import DualGradientStep, ReferenceDualGradient
from dgl_ray.trainer import Trial


def _pair(name, width, in_ch=1):
    torch.manual_seed(0)
    m = build_model(name, 10, in_ch, width).double()
    m2 = copy.deepcopy(m)
    opt = lambda mm: torch.optim.SGD(mm.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    return m, opt(m), m2, opt(m2)


@pytest.mark.parametrize("name,width,lam,K", [("tinycnn", 1.0, 0.3, 4), ("tinycnn", 2.0, 0.7, 1),
                                              ("resnet18", 0.125, 0.45, 3), ("tinycnn", 1.0, 0.0, 16),
                                              ("tinycnn", 1.0, 1.0, 5)])
def test_fast_step_equals_reference(name, width, lam, K):
    ref_m, ref_opt, m, opt = _pair(name, width)
    ref = ReferenceDualGradient(ref_m, ref_opt, K)
    fast = DualGradientStep(m, opt, K)
    g = torch.Generator().manual_seed(1)
    for step in range(12):          # covers several cache refreshes (step % K == 0)
        x = torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64)
        bc = torch.randint(0, 10, (16,), generator=g)
        bn = torch.where(torch.rand(16, generator=g) < 0.4, torch.randint(0, 10, (16,), generator=g), bc)
        r = ref.step(x, bn, bc, lam)
        f = fast(x, bn, bc, lam)
        assert torch.allclose(r["loss_s"], f["loss_s"], rtol=0, atol=1e-12)
        assert torch.allclose(r["cos"], f["cos"], rtol=0, atol=1e-10), step
        for (n1, p1), p2 in zip(ref_m.named_parameters(), m.parameters()):
            assert torch.allclose(p1, p2, rtol=1e-10, atol=1e-12), (step, n1, (p1 - p2).abs().max())
        for b1, b2 in zip(ref_m.buffers(), m.buffers()):   # BN statistics: two forwards on refresh steps
            assert torch.allclose(b1.double(), b2.double(), rtol=1e-10, atol=1e-12)
    assert fast.step == ref.state["step"] == 12
    assert torch.allclose(torch.cat([t.reshape(-1) for t in fast.cached_gv]), ref.state["gv"], atol=1e-12)


def test_fast_step_detects_a_wrong_mix():
    """The comparison above can fail: a step that skips the cache refresh differs from the reference."""
    ref_m, ref_opt, m, opt = _pair("tinycnn", 1.0)
    ref = ReferenceDualGradient(ref_m, ref_opt, 2)
    fast = DualGradientStep(m, opt, 1000)   # never refreshes after step 0
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64)
        y = torch.randint(0, 10, (16,), generator=g)
        yn = torch.roll(y, 1)
        ref.step(x, yn, y, 0.5)
        fast(x, yn, y, 0.5)
    diff = max((p1 - p2).abs().max().item() for p1, p2 in zip(ref_m.parameters(), m.parameters()))
    assert diff > 1e-6


def test_trial_epoch_equals_reference_loop(digits):
    """The whole trainer path (data order, normalisation, LR, noisy labels) against the notebook's
    loop fed the same batches: three epochs, K=16, float64."""
    cfg = dict(dataset="digits", lam=0.4, seed=3, epochs=3, dtype="float64", batch_size=64)
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
    trial.run()
    assert trial.stepper.step == ref.state["step"] == 3 * 22
    for p1, p2 in zip(ref_model.parameters(), trial.model.parameters()):
        assert torch.allclose(p1, p2, rtol=1e-9, atol=1e-11)
