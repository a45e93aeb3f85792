"""The dual-gradient step as the seed notebook wrote it: the contract every fast path is tested against.

It implements PROTOCOLS.md's update rule on one minibatch:
  g_s = grad CE(model(x), noisy);  g_v = grad CE(model(x), clean) on the SAME batch, a second
  forward in train mode (BatchNorm statistics update twice), recomputed when step % K == 0 and
  cached otherwise;  g = (1-λ)·g_s/(‖g_s‖+1e-12) + λ·g_v/(‖g_v‖+1e-12), norms over all parameters
  as one vector; g goes into .grad and SGD(momentum 0.9, weight decay 5e-4) steps.
The fast path is ``dgl_ray.batched.Population`` (any number of trials, one of them included);
tests/test_step.py and tests/test_batched.py check it against this reference, step for step.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

EPS = 1e-12


class ReferenceDualGradient:
    """The seed notebook's train_one_epoch body, kept as it was written (flat vector copies,
    retain_graph, per-parameter write-back). Slow on purpose: it is the contract."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, K: int = 16):
        self.model, self.opt, self.K = model, opt, K
        self.state = {"step": 0, "gv": None}

    def step(self, x, noisy, clean, lam: float) -> dict:
        """One step on the batch ``x`` with its noisy and clean labels (the notebook's bn, bc)."""
        model, opt, K = self.model, self.opt, self.K
        crit = nn.CrossEntropyLoss()
        step = self.state["step"]
        cached_gv = self.state["gv"]

        opt.zero_grad()
        loss_s = crit(model(x), noisy)
        loss_s.backward(retain_graph=True)
        gs = parameters_to_vector([p.grad for p in model.parameters()]).clone()

        if step % K == 0 or cached_gv is None:
            opt.zero_grad()
            loss_v = crit(model(x), clean)
            loss_v.backward()
            cached_gv = parameters_to_vector([p.grad for p in model.parameters()]).clone()

        gs_n = gs / (gs.norm() + 1e-12)
        gv_n = cached_gv / (cached_gv.norm() + 1e-12)

        g_mix = (1 - lam) * gs_n + lam * gv_n
        opt.zero_grad()
        i = 0
        for p in model.parameters():
            n = p.numel()
            p.grad = g_mix[i:i + n].view(p.shape).clone()
            i += n
        opt.step()
        step += 1

        self.state["step"] = step
        self.state["gv"] = cached_gv
        cos = torch.dot(gs, cached_gv) / (gs.norm() * cached_gv.norm() + 1e-12)
        return {"loss_s": loss_s.detach(), "cos": cos.detach()}
