"""Many trials as ONE model: G (λ, seed) pairs of the digits TinyCNN trained in lock step.

The 8/16-channel digits CNN is overhead-bound (PROTOCOLS.md: ≈2.5 ms per step, most of it Python
and kernel launches), so one trial per process leaves a CPU idle. ``BatchedTrials`` stacks the G
trials' parameters along a leading axis and runs them as one grouped network:

    conv(groups=G) -> BatchNorm over G·C channels -> ReLU -> pool -> conv(groups=G) -> BN -> ReLU
    -> mean -> per-trial head (einsum with a (G, 10, C) weight)

A grouped conv / per-channel BatchNorm never mixes groups, so group g computes exactly trial g's
network; the loss is the SUM of the G per-trial mean losses, whose gradient with respect to the
stacked parameters is, slice by slice, each trial's own gradient. Everything else of the update
rule is done per trial on (G,)-shaped tensors: ‖g_s‖, ‖g_v‖ over that trial's parameters only, the
mix with that trial's λ, SGD (momentum 0.9, weight decay) with that trial's LR and momentum buffer.

Each trial keeps what ``Trial`` gives it: its noisy labels, its data order and augmentation (its own
generator, seeded as ``Trial``'s), its init (built by ``Trial`` itself), its λ/LR schedule, its
metrics rows and summary. tests/test_batched.py checks every trial against ``Trial`` run alone and
against ``ReferenceDualGradient``.

    from dgl_ray.batched import BatchedTrials, run_group
    summaries = run_group([dict(dataset="digits", lam=l, seed=s, epochs=30) for l in lams for s in seeds],
                          on_eval=lambda metrics, i: print(i, metrics))

Limits (a ConfigError says so): model tinycnn; all trials share data set, model, width, batch size,
epochs, K, momentum, weight decay, augment, dtype, device, eval_every; no trusted subset (V2), no
fresh c_sv (W1). λ schedules, LR schedules, seeds, η, noise kind and init checkpoints may differ.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .config import TrialConfig
from .data import DataSet, augment_batch, load_dataset
from .errors import ConfigError
from .step import EPS
from .trainer import STATUS_COMPLETED, STATUS_DIVERGED, STATUS_RUNNING, Trial

# fields every trial of a group must share (they fix the shapes and the lock step)
SHARED = ("dataset", "data_root", "normalization", "augment", "synthetic_size", "model", "width", "K",
          "batch_size", "epochs", "momentum", "weight_decay", "eval_every", "device", "dtype")

# TinyCNN's parameters and BatchNorm buffers, in named_parameters()/named_buffers() order
_PARAMS = ("features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
           "features.4.weight", "features.4.bias", "features.5.weight", "features.5.bias",
           "fc.weight", "fc.bias")
_BN = ("features.1", "features.5")


def _check_group(cfgs: Sequence[TrialConfig]) -> None:
    if not cfgs:
        raise ConfigError("BatchedTrials needs at least one trial config")
    first = cfgs[0]
    for c in cfgs:
        if c.model != "tinycnn":
            raise ConfigError(f"BatchedTrials runs model=tinycnn only (got {c.model!r}); run other models with Trial")
        if c.trusted_fraction is not None or c.fresh_csv:
            raise ConfigError("BatchedTrials does not run trusted subsets (V2) or fresh c_sv (W1); use Trial")
        for k in SHARED:
            if getattr(c, k) != getattr(first, k):
                raise ConfigError(f"trials of one group must share {k}: {getattr(first, k)!r} vs {getattr(c, k)!r} "
                                  f"(seed {c.seed}); split them into groups with equal {', '.join(SHARED)}")


class BatchedTrials:
    """G trials trained as one grouped TinyCNN. ``trials[i]`` is a real ``Trial`` (built as usual,
    so it holds trial i's config, noisy labels, generator, history and status); its model and
    optimizer are filled from the stacked state by ``sync_trials()`` (for checkpoints)."""

    def __init__(self, configs: Sequence[TrialConfig | dict] | None = None, data: DataSet | None = None,
                 trials: Sequence[Trial] | None = None):
        """Build G fresh trials from ``configs``, or continue ``trials`` (e.g. each restored with
        ``Trial.load_state_dict`` from a checkpoint): their weights, BatchNorm statistics, momentum,
        cached g_v, step counter and epoch are stacked as they are. Trials that already ended
        (completed/diverged) stay out of the group."""
        if trials is None:
            cfgs = [TrialConfig.from_dict(c) if isinstance(c, dict) else c.resolved() for c in configs]
            _check_group(cfgs)
            data = data if data is not None else load_dataset(cfgs[0])
            # each Trial draws its own init (seeded global RNG), noisy labels and data generator
            trials = [Trial(c, data=data) for c in cfgs]
        else:
            _check_group([t.cfg for t in trials])
            running = [t for t in trials if t.status == STATUS_RUNNING]
            if len({(t.epoch, t.stepper.step) for t in running}) > 1:
                raise ConfigError("trials continued as one group must stand at the same epoch and step")
        self.trials = list(trials)
        t0 = self.trials[0]
        self.cfg, self.data, self.device, self.dtype = t0.cfg, t0.data, t0.device, t0.dtype
        self.G = len(self.trials)
        self.K = self.cfg.K
        live = [t for t in self.trials if t.status == STATUS_RUNNING] or self.trials
        self.step = live[0].stepper.step  # global step, shared: the trials run in lock step
        self.epoch = live[0].epoch
        stack = lambda ts: torch.stack([t.detach().clone() for t in ts]).contiguous()
        named = [dict(t.model.named_parameters()) for t in self.trials]
        # all of a trial's parameters in one row of a (G, P) leaf: norms, dots, mix and SGD are a
        # handful of whole-tensor ops per step instead of ~100 per-parameter ones
        stacked = [stack([n[k] for n in named]) for k in _PARAMS]
        self.shapes = [tuple(t.shape[1:]) for t in stacked]
        self.flat = torch.cat([t.reshape(self.G, -1) for t in stacked], 1).requires_grad_()
        bufs = [dict(t.model.named_buffers()) for t in self.trials]
        self.run_mean = [stack([b[f"{m}.running_mean"] for b in bufs]) for m in _BN]
        self.run_var = [stack([b[f"{m}.running_var"] for b in bufs]) for m in _BN]
        self.bn_tracked = [stack([b[f"{m}.num_batches_tracked"] for b in bufs]) for m in _BN]

        def row(ts):  # per-parameter tensors of one trial -> its flat row
            return torch.cat([t.detach().reshape(-1) for t in ts]).to(self.flat.dtype)

        # momentum: absent before the first step (0·0.9 + d_p == d_p: SGD's first step exactly)
        self.mom = torch.stack([
            row([t.opt.state.get(n[k], {}).get("momentum_buffer", torch.zeros_like(n[k])) for k in _PARAMS])
            for t, n in zip(self.trials, named)]).to(self.device)
        self.gv: torch.Tensor | None = None
        self.gv_norm: torch.Tensor | None = None
        if all(t.stepper.cached_gv is not None for t in self.trials):
            self.gv = torch.stack([row(t.stepper.cached_gv) for t in self.trials])
            self.gv_norm = torch.stack([t.stepper.cached_gv_norm.to(self.flat.dtype) for t in self.trials])
        self.y_noisy = torch.stack([t.y_noisy for t in self.trials])          # (G, N)
        self.active = list(range(self.G))        # trial indices still training, in slice order
        self.wall_time = max(t.wall_time for t in self.trials)
        self._acc = self._new_acc()
        self._mean = torch.tensor(self.data.mean, dtype=self.dtype, device=self.device).view(1, 1, -1, 1, 1)
        self._std = torch.tensor(self.data.std, dtype=self.dtype, device=self.device).view(1, 1, -1, 1, 1)
        done = [j for j, t in enumerate(self.trials) if t.status != STATUS_RUNNING]
        if done:
            self._drop([j for j in range(self.G) if j not in done])

    @property
    def params(self) -> list[torch.Tensor]:
        """Per-parameter views (G, *shape) of the flat rows, in TinyCNN's named_parameters() order."""
        out, o = [], 0
        for shp in self.shapes:
            n = math.prod(shp)
            out.append(self.flat[:, o:o + n].view(self.flat.shape[0], *shp))
            o += n
        return out

    def _split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        out, o = [], 0
        for shp in self.shapes:
            n = math.prod(shp)
            out.append(flat[:, o:o + n].view(flat.shape[0], *shp))
            o += n
        return out

    # ---- the grouped network ----------------------------------------------------------------------
    def _forward(self, params, x, training: bool):
        """x: (B, G, C, H, W) normalised -> logits (B, G, classes)."""
        w1, b1, g1, be1, w2, b2, g2, be2, wf, bf = params
        B, G = x.shape[:2]
        # channels-last: BatchNorm, pooling and the grouped convs walk G·C contiguous channels
        h = x.reshape(B, G * x.shape[2], *x.shape[3:]).contiguous(memory_format=torch.channels_last)
        h = F.conv2d(h, w1.reshape(-1, *w1.shape[2:]), b1.reshape(-1), padding=1, groups=G)
        h = F.batch_norm(h, self.run_mean[0].view(-1), self.run_var[0].view(-1), g1.reshape(-1), be1.reshape(-1),
                         training=training, momentum=0.1, eps=1e-5)
        h = F.relu(F.max_pool2d(h, 2))      # pool then ReLU: the same values and gradients, 4x less ReLU
        h = F.conv2d(h, w2.reshape(-1, *w2.shape[2:]), b2.reshape(-1), padding=1, groups=G)
        h = F.batch_norm(h, self.run_mean[1].view(-1), self.run_var[1].view(-1), g2.reshape(-1), be2.reshape(-1),
                         training=training, momentum=0.1, eps=1e-5)
        h = F.relu(h).mean(dim=(2, 3)).view(B, G, -1)                       # global average pool
        return torch.einsum("bgc,gkc->bgk", h, wf) + bf                       # per-trial head

    def _grads(self, x, y):
        """Per-trial mean CE losses (G,) and the stacked gradients of their sum (= each trial's own)."""
        logits = self._forward(self.params, x, training=True)
        B, G, k = logits.shape
        losses = F.cross_entropy(logits.reshape(B * G, k), y.reshape(B * G), reduction="none").view(B, G).mean(0)
        for t in self.bn_tracked:                                              # BatchNorm's counter
            t += 1
        return losses.detach(), torch.autograd.grad(losses.sum(), self.flat)[0]

    def _step(self, x, bn, bc, lam, lr) -> None:
        loss_s, gs = self._grads(x, bn)
        if self.step % self.K == 0 or self.gv is None:
            _, self.gv = self._grads(x, bc)
            self.gv_norm = torch.linalg.vector_norm(self.gv, dim=1)
        gs_norm = torch.linalg.vector_norm(gs, dim=1)                       # per trial: its own row
        gv, gv_norm = self.gv, self.gv_norm
        cos = (gs * gv).sum(1) / (gs_norm * gv_norm + EPS)
        a = ((1 - lam) / (gs_norm + EPS))[:, None]
        b = (lam / (gv_norm + EPS))[:, None]
        wd, m = self.cfg.weight_decay, self.cfg.momentum
        with torch.no_grad():
            d = gs.mul_(a).add_(gv * b)                                        # the mixed gradient, in place
            if wd:
                d.add_(self.flat, alpha=wd)                                    # decay inside the step, as SGD
            self.mom.mul_(m).add_(d)
            self.flat.sub_(self.mom * lr[:, None])
        self.step += 1
        acc = self._acc
        acc["loss"] += loss_s
        acc["cos"] += cos
        acc["gs"] += gs_norm
        acc["gv"] += gv_norm
        acc["steps"] += 1

    def _new_acc(self) -> dict:
        z = lambda: torch.zeros(len(self.active), dtype=torch.float64, device=self.device)
        return {"loss": z(), "cos": z(), "gs": z(), "gv": z(), "steps": 0}

    # ---- one epoch of every active trial ---------------------------------------------------------------
    def train_epoch(self) -> None:
        c, d = self.cfg, self.data
        trials = [self.trials[i] for i in self.active]
        plans = [t.plans[self.epoch] for t in trials]
        lam = torch.tensor([p.lam for p in plans], dtype=self.dtype, device=self.device)
        lr = torch.tensor([t._lr(self.epoch) for t in trials], dtype=self.dtype, device=self.device)
        n = len(d.y_train)
        # each trial's data order from its own generator, as Trial.train_epoch draws it
        perms = torch.stack([torch.randperm(n, generator=t.gen, device=self.device) for t in trials], 1)  # (n, G)
        yn = self.y_noisy[self.active].t()                                                                 # (N, G)
        cols = torch.arange(len(trials), device=self.device)
        for s in range(0, n, c.batch_size):
            idx = perms[s:s + c.batch_size]                                   # (B, G)
            if c.augment:   # per trial, in batch order: the same draws from each generator as Trial's
                raw = torch.stack([augment_batch(d.x_train[idx[:, j]], t.gen) for j, t in enumerate(trials)], 1)
            else:
                raw = d.x_train[idx]                                          # (B, G, C, H, W): one gather
            x = (raw.to(self.dtype) / d.scale - self._mean) / self._std
            self._step(x, yn[idx, cols], d.y_train[idx], lam, lr)
        self.epoch += 1
        for t in trials:
            t.epoch = self.epoch

    def _finite(self) -> torch.Tensor:
        a = self._acc
        G = len(self.active)
        ok = torch.isfinite(torch.stack([a["loss"], a["gs"], a["gv"]])).all(0)
        ok &= torch.isfinite(self.flat.detach()).all(1)
        return ok

    @torch.no_grad()
    def evaluate(self) -> torch.Tensor:
        """Test errors (G,) of the active trials, eval mode (running statistics); one host sync later."""
        d = self.data
        G = len(self.active)
        wrong = torch.zeros(G, dtype=torch.int64, device=self.device)
        for s in range(0, len(d.y_test), 1000):
            raw = d.x_test[s:s + 1000]
            x = (raw.to(self.dtype).unsqueeze(1) / d.scale - self._mean) / self._std
            x = x.expand(-1, G, *x.shape[2:])
            logits = self._forward(self.params, x, training=False)
            wrong += (logits.argmax(2) != d.y_test[s:s + 1000, None]).sum(0)
        return wrong.double() / len(d.y_test)

    def _drop(self, keep: list[int]) -> None:
        """Keep only these slice positions (mask out diverged trials: their NaNs leave the group)."""
        k = torch.tensor(keep, dtype=torch.long, device=self.device)
        sel = lambda ts: [t.detach().index_select(0, k).contiguous() for t in ts]
        self.flat = self.flat.detach().index_select(0, k).requires_grad_()
        self.mom = self.mom.index_select(0, k)
        self.run_mean, self.run_var = sel(self.run_mean), sel(self.run_var)
        self.bn_tracked = sel(self.bn_tracked)
        if self.gv is not None:
            self.gv, self.gv_norm = self.gv.index_select(0, k), self.gv_norm.index_select(0, k)
        for key in ("loss", "cos", "gs", "gv"):
            self._acc[key] = self._acc[key].index_select(0, k)
        self.active = [self.active[j] for j in keep]

    # ---- the loop -------------------------------------------------------------------------------------
    def run(self, on_eval: Callable[[dict, int], None] | None = None, max_epochs: int | None = None) -> list[dict]:
        """Train every trial to the end of its schedule (or ``max_epochs`` more epochs), evaluating every
        ``eval_every`` epochs and at the end. ``on_eval(metrics, i)`` gets trial i's metrics dict (the
        same keys as ``Trial``'s) for each evaluation. A trial whose loss, gradient norms or weights are
        not finite at the end of an epoch is reported 'diverged' (test_error NaN) and leaves the group;
        the others go on. Returns one ``summary()`` per trial, in config order."""
        c = self.cfg
        stop_at = c.epochs if max_epochs is None else min(c.epochs, self.epoch + max_epochs)
        while self.active and self.epoch < stop_at:
            t0 = time.perf_counter()
            self.train_epoch()
            last = self.epoch == c.epochs
            finite = self._finite()                                   # (G,), checked every epoch, as Trial
            evaluating = last or self.epoch % c.eval_every == 0
            finite_l = finite.tolist()                                # the one host sync of the epoch
            if not evaluating and all(finite_l):
                self.wall_time += time.perf_counter() - t0
                continue
            report = [j for j in range(len(self.active)) if evaluating or not finite_l[j]]
            errs = self.evaluate() if evaluating else torch.zeros(len(self.active), dtype=torch.float64)
            errs = torch.where(finite.cpu(), errs.cpu(), torch.tensor(float("nan"), dtype=torch.float64)).tolist()
            acc = {k: self._acc[k].tolist() for k in ("loss", "cos", "gs", "gv")}
            steps = self._acc["steps"]
            self.wall_time += time.perf_counter() - t0
            dt = time.perf_counter() - t0
            keep = []
            for j, i in enumerate(self.active):
                if j not in report:
                    keep.append(j)
                    continue
                t = self.trials[i]
                t.status = STATUS_DIVERGED if not finite_l[j] else STATUS_COMPLETED if last else STATUS_RUNNING
                if t.status == STATUS_RUNNING:
                    keep.append(j)
                t.stepper.step = self.step
                t.wall_time = self.wall_time
                # Trial's own accumulator (every key its metrics() reads), filled with this trial's sums
                t._acc = {**t._new_acc(), **{k: torch.tensor(acc[k][j], dtype=torch.float64) for k in acc},
                          "steps": steps}
                m = t.metrics(errs[j], dt)
                t.history.append(m)
                if on_eval is not None:
                    on_eval(m, i)
            if evaluating:
                self._acc = self._new_acc()
            if len(keep) < len(self.active):
                self.sync_trials()                  # leaving trials keep their final state in trials[i]
                self._drop(keep)
        if self.active:
            self.sync_trials()
        return [t.summary() for t in self.trials]

    # ---- per-trial state ----------------------------------------------------------------------------
    @torch.no_grad()
    def sync_trials(self) -> None:
        """Write the stacked state of the active trials into their ``Trial`` objects (model weights,
        BatchNorm statistics, SGD momentum, cached g_v, step counter), so ``trials[i].save(path)``
        writes a checkpoint that ``Trial.resume`` continues."""
        for j, i in enumerate(self.active):
            t = self.trials[i]
            named = dict(t.model.named_parameters())
            for k, p in zip(_PARAMS, self.params):
                named[k].copy_(p[j])
            bufs = dict(t.model.named_buffers())
            for m, rm, rv, nb in zip(_BN, self.run_mean, self.run_var, self.bn_tracked):
                bufs[f"{m}.running_mean"].copy_(rm[j])
                bufs[f"{m}.running_var"].copy_(rv[j])
                bufs[f"{m}.num_batches_tracked"].copy_(nb[j])
            for k, buf in zip(_PARAMS, self._split(self.mom)):
                if self.step:
                    t.opt.state[named[k]]["momentum_buffer"] = buf[j].clone()
            for g in t.opt.param_groups:
                g["lr"] = t._lr(max(self.epoch - 1, 0))
            t.stepper.step = self.step
            if self.gv is not None:
                t.stepper.cached_gv = [v[j].clone() for v in self._split(self.gv)]
                t.stepper.cached_gv_norm = self.gv_norm[j].clone()

    def summaries(self) -> list[dict]:
        return [t.summary() for t in self.trials]


def group_configs(configs: Sequence[TrialConfig | dict], max_size: int = 100) -> list[list[int]]:
    """Split any list of trial configs into groups that BatchedTrials can run: equal ``SHARED`` fields,
    at most ``max_size`` trials each, order kept inside a group. Returns lists of indices into
    ``configs``; a config BatchedTrials cannot run (not tinycnn, V2, W1) gets a group of its own,
    to be run with ``Trial`` (see ``batchable``)."""
    cfgs = [TrialConfig.from_dict(c) if isinstance(c, dict) else c.resolved() for c in configs]
    keys: dict = {}
    for i, c in enumerate(cfgs):
        k = (tuple(repr(getattr(c, f)) for f in SHARED) if batchable(c) else ("single", i))
        keys.setdefault(k, []).append(i)
    return [idx[s:s + max_size] for idx in keys.values() for s in range(0, len(idx), max_size)]


def batchable(config: TrialConfig | dict) -> bool:
    """True if BatchedTrials can run this trial (tinycnn, no trusted subset, no fresh c_sv)."""
    c = TrialConfig.from_dict(config) if isinstance(config, dict) else config.resolved()
    return c.model == "tinycnn" and c.trusted_fraction is None and not c.fresh_csv


def run_group(configs: Sequence[TrialConfig | dict], on_eval: Callable[[dict, int], None] | None = None,
              data: DataSet | None = None) -> list[dict]:
    """Train a group of trials as one batched model; the entry point for one Ray Tune trial per group.
    ``on_eval(metrics, i)`` sees trial i's metrics at each evaluation (i indexes ``configs``);
    returns one summary per config, in order."""
    return BatchedTrials(configs, data=data).run(on_eval=on_eval)
