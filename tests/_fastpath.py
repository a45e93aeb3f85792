"""How far a device fast-path switch moves a trial from the notebook's step (ReferenceDualGradient in
float64) and from the same trial without it: the measurements behind the tolerances of
tests/test_gpu.py and the deviations `python -m benchmarks.gpu_check` prints (docs/PACKING.md,
"Device fast path").

Two measures, because the dual-gradient step is chaotic: from the same weights, the float32 default
path's ONE update differs from the float64 reference by ~2e-4 (relative, measured on this CPU with a
width-1/8 ResNet-18), but after 3 steps by ~5e-2 and after 6 by ~1e-1 (each step's normalised
gradient amplifies the last one's rounding). So a switch's precision is judged on one step from the
same state (``one_step``), and whole trajectories (``trajectory``) only in float64, where exact
switches must agree to 1e-9, or loosely in float32.
"""
from __future__ import annotations

import copy

import torch

from dgl_ray.batched import BatchedTrials
from dgl_ray.data import augment_batch, load_dataset
from dgl_ray.step import ReferenceDualGradient
from dgl_ray.trainer import Trial


def _row(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()])


def _reference_model(cfg: dict, data):
    """The member's model (same init: float32 draws cast to float64 are exact) in float64, with
    the notebook's SGD and step."""
    t = Trial(dict(cfg, dtype="float64", channels_last=True, bf16=False, tf32=False, compile=False), data=data)
    m = copy.deepcopy(t.model)
    opt = torch.optim.SGD(m.parameters(), lr=t.lr(0), momentum=t.cfg.momentum, weight_decay=t.cfg.weight_decay)
    return t, m, opt, ReferenceDualGradient(m, opt, t.cfg.K)


def one_step(cfgs: list[dict], data=None, **switch) -> dict:
    """One update of the population of ``cfgs`` (with ``switch``, e.g. bf16=True) and of each member
    alone through the float64 reference, from the same weights on the same augmented batch. Returns
    ``rel``: max over members of |Δθ - Δθ_ref| / |Δθ_ref|; ``cos``: min over members of cos(Δθ, Δθ_ref);
    ``loss``: max |loss_s - loss_s_ref|; ``update``: the population's (G, P) update, float64."""
    data = data if data is not None else load_data(cfgs[0])
    b = BatchedTrials([dict(c, **switch) for c in cfgs], data=data)
    d, dev, G = b.data, b.device, b.G
    gen = torch.Generator(device=dev).manual_seed(1234)
    idx = torch.arange(min(b.cfg.batch_size, len(d.y_train)), device=dev)
    raw = augment_batch(d.x_train[idx], gen) if b.cfg.augment else d.x_train[idx]
    x64 = d.normalise(raw, torch.float64)
    before = b.pop.flat.detach().double().clone()
    S = b.pop.G                     # the population's slots: the G trials, then padding (frozen: λ = lr = 0)
    lam = torch.tensor([t.plans[0].lam for t in b.trials] + [0.0] * (S - G), dtype=b.dtype, device=dev)
    lr = torch.tensor([t.lr(0) for t in b.trials] + [0.0] * (S - G), dtype=b.dtype, device=dev)
    noisy = [t.y_noisy[idx] for t in b.trials]
    out = b.pop.step_batch(x64.to(b.dtype).unsqueeze(1).expand(-1, S, -1, -1, -1),
                           torch.stack(noisy + noisy[:1] * (S - G), 1), d.y_train[idx, None].expand(-1, S),
                           lam, lr)
    update = (b.pop.flat.detach().double() - before)[:G]
    rel, cos, loss = [], [], []
    for g, c in enumerate(cfgs):
        t, m, _, ref = _reference_model(c, data)
        w0 = _row(m)
        r = ref.step(x64, t.y_noisy[idx], d.y_train[idx], t.plans[0].lam)
        du = _row(m) - w0
        rel.append(((update[g] - du).norm() / du.norm()).item())
        cos.append(torch.nn.functional.cosine_similarity(update[g], du, 0).item())
        loss.append(abs(out["loss_s"][g].item() - r["loss_s"].item()))
    return {"rel": max(rel), "cos": min(cos), "loss": max(loss), "update": update.cpu()}


def trajectory(cfgs: list[dict], data=None, **switch) -> dict:
    """Train the population to the end: per-epoch training loss of each member (G, epochs), each
    member's final weights (G, P) and BatchNorm buffers, float64, and its last test error."""
    data = data if data is not None else load_data(cfgs[0])
    b = BatchedTrials([dict(c, **switch) for c in cfgs], data=data)
    b.run()
    return {"loss": torch.tensor([[r["train_loss"] for r in t.history] for t in b.trials], dtype=torch.float64),
            "w": torch.stack([_row(t.model).cpu() for t in b.trials]),
            "bn": torch.stack([torch.cat([v.detach().reshape(-1).double().cpu() for k, v in t.model.named_buffers()
                                          if "num_batches" not in k]) for t in b.trials]),
            "test_error": [t.history[-1]["test_error"] for t in b.trials]}


def reference_trajectory(cfgs: list[dict], data=None) -> dict:
    """Each member alone through the notebook's step in float64, fed the batches the trial draws
    (its data order and augmentation from its own generator, in the trainer's order)."""
    data = data if data is not None else load_data(cfgs[0])
    losses, ws, bns = [], [], []
    for c in cfgs:
        t, m, opt, ref = _reference_model(c, data)
        d, dev, bs = t.data, t.device, t.cfg.batch_size
        gen = torch.Generator(device=dev).manual_seed(t.cfg.seed)
        per_epoch = []
        for e in range(t.cfg.epochs):
            for group in opt.param_groups:
                group["lr"] = t.lr(e)
            perm = torch.randperm(len(d.y_train), generator=gen, device=dev)
            ls = []
            for s in range(0, len(perm), bs):
                idx = perm[s:s + bs]
                raw = augment_batch(d.x_train[idx], gen) if t.cfg.augment else d.x_train[idx]
                ls.append(ref.step(d.normalise(raw, torch.float64), t.y_noisy[idx], d.y_train[idx],
                                   t.plans[e].lam)["loss_s"].item())
            per_epoch.append(sum(ls) / len(ls))
        losses.append(per_epoch)
        ws.append(_row(m).cpu())
        bns.append(torch.cat([v.detach().reshape(-1).double().cpu() for k, v in m.named_buffers()
                              if "num_batches" not in k]))
    return {"loss": torch.tensor(losses, dtype=torch.float64), "w": torch.stack(ws), "bn": torch.stack(bns)}


def deviation(a: dict, b: dict, init: torch.Tensor | None = None) -> dict:
    """max |Δ per-epoch loss|; weights: max over members of |w_a - w_b| / |w_b - init| (relative to how
    far training moved them; |w_b| without ``init``); BatchNorm buffers: relative."""
    dw = (a["w"] - b["w"]).norm(dim=1) / ((b["w"] - init) if init is not None else b["w"]).norm(dim=1)
    dbn = (a["bn"] - b["bn"]).norm(dim=1) / b["bn"].norm(dim=1)
    return {"loss": (a["loss"] - b["loss"]).abs().max().item(), "w": dw.max().item(), "bn": dbn.max().item()}


def init_rows(cfgs: list[dict], data) -> torch.Tensor:
    return torch.stack([_row(Trial(dict(c, dtype="float64"), data=data).model).cpu() for c in cfgs])


def load_data(cfg: dict):
    """The (CPU) data set of a trial config, loaded once for every run of a comparison."""
    from dgl_ray.config import TrialConfig
    return load_dataset(TrialConfig.from_dict(cfg))
