"""The dual-gradient step: the plain reference (the seed notebook, line by line) and the fast path.

Both implement PROTOCOLS.md's update rule on one minibatch:
  g_s = grad CE(model(x), noisy);  g_v = grad CE(model(x), clean) on the SAME batch, a second
  forward in train mode (BatchNorm statistics update twice), recomputed when step % K == 0 and
  cached otherwise;  g = (1-λ)·g_s/(‖g_s‖+1e-12) + λ·g_v/(‖g_v‖+1e-12), norms over all parameters
  as one vector; g goes into .grad and SGD(momentum 0.9, weight decay 5e-4) steps.
tests/test_step.py checks the fast path against the reference, step for step.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parameters_to_vector

EPS = 1e-12


class ReferenceDualGradient:
    """The seed notebook's train_one_epoch body, kept as it was written (flat vector copies,
    retain_graph, per-parameter write-back). Slow on purpose: it is the contract."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, K: int = 16):
        self.model, self.opt, self.K = model, opt, K
        self.state = {"step": 0, "gv": None}

    def step(self, x, bn, bc, lam: float) -> dict:
        model, opt, K = self.model, self.opt, self.K
        crit = nn.CrossEntropyLoss()
        step = self.state["step"]
        cached_gv = self.state["gv"]

        opt.zero_grad()
        loss_s = crit(model(x), bn)
        loss_s.backward(retain_graph=True)
        gs = parameters_to_vector([p.grad for p in model.parameters()]).clone()

        if step % K == 0 or cached_gv is None:
            opt.zero_grad()
            loss_v = crit(model(x), bc)
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


def _total_norm(ts) -> torch.Tensor:
    # the norm of all parameters as one vector, without building that vector
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(ts)))


def _dot(a, b) -> torch.Tensor:
    return torch.stack([torch.vdot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b)]).sum()


class DualGradientStep:
    """The fast path. What it does differently from the reference, each keeping the rule:
    - autograd.grad returns g_s and g_v as per-parameter tensors: no .grad round trips, no
      retain_graph (the second forward builds its own graph), no flat-vector copies;
    - ‖g‖ from per-tensor norms (foreach kernels); ‖g_v‖ is computed once per refresh and cached;
    - the mix is two scalars times two tensor lists, written into .grad with foreach ops;
    - statistics stay on the device as tensors: no host sync per step.
    """

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, K: int = 16):
        self.model, self.opt, self.K = model, opt, K
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.step = 0                      # global step counter (the notebook's cached_gv_ref['step'])
        self.cached_gv: list[torch.Tensor] | None = None
        self.cached_gv_norm: torch.Tensor | None = None

    def reset(self) -> None:
        """Fresh start from a checkpoint (T/W protocols): step counter and cache reset."""
        self.step, self.cached_gv, self.cached_gv_norm = 0, None, None

    def _grads(self, x, y):
        loss = F.cross_entropy(self.model(x), y)
        return loss, list(torch.autograd.grad(loss, self.params))

    def _fresh_gv(self, x, bc, trusted):
        if trusted is not None:
            # V2: only the trusted samples of the batch; none present -> keep the old g_v
            if not bool(trusted.any()):
                return None
            x, bc = x[trusted], bc[trusted]
        return self._grads(x, bc)[1]

    def __call__(self, x, bn, bc, lam: float, trusted=None, fresh_csv: bool = False) -> dict:
        loss_s, gs = self._grads(x, bn)
        refreshed = False
        if self.step % self.K == 0 or self.cached_gv is None:
            gv = self._fresh_gv(x, bc, trusted)
            if gv is not None:
                self.cached_gv, self.cached_gv_norm = gv, _total_norm(gv)
                refreshed = True
        gs_norm = _total_norm(gs)
        out = {"loss_s": loss_s.detach(), "gs_norm": gs_norm}
        if self.cached_gv is None:           # V2 before any trusted sample was seen: ĝ_v = 0
            zero = torch.zeros((), device=gs_norm.device, dtype=gs_norm.dtype)
            out.update(cos=zero, gv_norm=zero)
            gv, b = None, None
        else:
            gv = self.cached_gv
            out["gv_norm"] = self.cached_gv_norm
            out["cos"] = _dot(gs, gv) / (gs_norm * self.cached_gv_norm + EPS)
            b = lam / (self.cached_gv_norm + EPS)
        if fresh_csv:
            out["c_sv"] = out["cos"] if refreshed else self._fresh_cos(x, bc, trusted, gs, gs_norm)
        a = (1 - lam) / (gs_norm + EPS)
        torch._foreach_mul_(gs, a)
        if gv is not None:
            torch._foreach_add_(gs, torch._foreach_mul(gv, b))
        for p, g in zip(self.params, gs):
            p.grad = g
        self.opt.step()
        self.step += 1
        return out

    def _fresh_cos(self, x, bc, trusted, gs, gs_norm):
        """W1's c_sv: cos(g_s, a fresh g_v). The extra forward must not change training, so the
        BatchNorm running statistics are put back afterwards."""
        bufs = [b for b in self.model.buffers()]
        saved = [b.clone() for b in bufs]
        gv = self._fresh_gv(x, bc, trusted)
        for b, s in zip(bufs, saved):
            b.copy_(s)
        if gv is None:
            return torch.full((), float("nan"), device=gs_norm.device, dtype=gs_norm.dtype)
        return _dot(gs, gv) / (gs_norm * _total_norm(gv) + EPS)

    # -- checkpoint state --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"step": self.step, "cached_gv": self.cached_gv, "cached_gv_norm": self.cached_gv_norm}

    def load_state_dict(self, s: dict) -> None:
        self.step = int(s["step"])
        self.cached_gv = s["cached_gv"]
        self.cached_gv_norm = s["cached_gv_norm"]
