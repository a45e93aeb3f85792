"""A population of G trials trained in lock step as ONE packed network: the only training loop.

``run_trial`` is a population of one, so a trial alone and a trial packed with others go through
the same code: the update rule and SGD exist once, here (``Population.step``), and every model of
``models.py`` packs (``dgl_ray.packing``: grouped convolutions, BatchNorm over G·C channels with
per-member running statistics, batched matmuls).

The update rule (PROTOCOLS.md) per member g, on (G, P) rows that hold each member's parameters:
  g_s = grad CE(model_g(x_g), noisy_g);  g_v = grad CE(model_g(x_g), clean_g) on the same batch (a
  second forward in train mode), recomputed when the member's own step % K == 0 and cached otherwise (V2: on the
  member's trusted samples only; none in the batch -> keep the old g_v);
  d = (1-λ_g)·g_s/(‖g_s‖+ε) + λ_g·g_v/(‖g_v‖+ε) + wd·θ;  m = μ·m + d;  θ -= lr_g·m  (torch's SGD).
The loss is the SUM of the members' mean losses, so its gradient with respect to the (G, P) rows is,
row by row, each member's own gradient; norms, dots, mix and SGD are whole-tensor ops on the rows.

Each member's state is its ``Trial`` (dgl_ray.trainer, a per-member record): noisy labels, trusted
subset, data order and augmentation (its own generator), dropout masks (its own generator), init, λ/LR
schedule, history, summary, checkpoint; the population writes its metrics rows (``metrics_row``) into
that history. tests/test_batched.py checks every member, for every model, against the trial alone and
against ``ReferenceDualGradient`` in float64.

    from dgl_ray.batched import run_group
    summaries = run_group([{"dataset": "digits", "lambda": l, "seed": s, "epochs": 30} for l in lams for s in seeds],
                          on_eval=lambda metrics, i: print(i, metrics))

A group shares what fixes the shapes and the lock step (``SHARED``) and whether it uses V2 / W1;
``group_configs`` splits any list of configs into such groups.
"""
from __future__ import annotations

import contextlib
import functools
import math
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from .allocator import keep_freed_memory
from .config import FAST_PATH_FIELDS, TrialConfig, shape_key
from .data import DataSet, augment_batch, load_dataset
from .errors import ConfigError
from .packing import PackedNet
from .step import EPS
from .trainer import STATUS_COMPLETED, STATUS_DIVERGED, STATUS_RUNNING, Trial

# fields every trial of a group must share (they fix the shapes and the lock step)
SHARED = ("dataset", "data_root", "normalization", "augment", "synthetic_size", "model", "width", "K",
          "batch_size", "epochs", "momentum", "weight_decay", "eval_every", "device", "dtype", "fresh_csv",
          *FAST_PATH_FIELDS)


def _group_key(c: TrialConfig) -> tuple:
    return tuple(repr(getattr(c, f)) for f in SHARED) + (c.trusted_fraction is not None,)


def _check_group(cfgs: Sequence[TrialConfig]) -> None:
    if not cfgs:
        raise ConfigError("a population needs at least one trial config")
    first = cfgs[0]
    for c in cfgs:
        for k in SHARED:
            if getattr(c, k) != getattr(first, k):
                raise ConfigError(f"trials of one group must share {k}: {getattr(first, k)!r} vs {getattr(c, k)!r} "
                                  f"(seed {c.seed}); split them into groups with equal {', '.join(SHARED)}")
        if (c.trusted_fraction is None) != (first.trusted_fraction is None):
            raise ConfigError(f"trials of one group must all use a trusted subset (V2) or none: "
                              f"{first.trusted_fraction!r} vs {c.trusted_fraction!r} (seed {c.seed})")


@dataclass(frozen=True)
class FastPath:
    """Device fast-path switches: the trial config's ``channels_last``, ``bf16``, ``tf32`` and ``compile``
    fields (``FastPath.of(cfg)``), so each is recorded in the trial's rows and checkpoint and shared by
    a group. On by default only what keeps the float64 equivalence tests passing: channels-last. The
    others change the arithmetic; tests/test_gpu.py holds each within a stated tolerance of the same
    trial without it and of ``ReferenceDualGradient`` (docs/PACKING.md, "Device fast path")."""
    channels_last: bool = True   # memory layout only: float64 tests run with it
    bf16: bool = False           # autocast forwards in bfloat16 (CUDA; CPU autocast works too)
    tf32: bool = False           # TF32 matmuls/convolutions on NVIDIA GPUs (a no-op elsewhere)
    compile: bool = False        # torch.compile of the packed forward

    @classmethod
    def of(cls, cfg: TrialConfig) -> "FastPath":
        return cls(**{f: getattr(cfg, f) for f in FAST_PATH_FIELDS})


class Population:
    """The update rule and SGD for G members of one architecture, held as (G, P) rows.

    ``flat`` (parameters), ``mom`` (momentum), ``gv`` (cached g_v, zeros before the first) are (G, P);
    ``buffers`` are the BatchNorm buffers, each (G, ...); ``step`` is the population's step clock and
    ``steps`` each member's own step counter."""

    def __init__(self, packed: PackedNet, flat, buffers, mom, gv, gv_norm, has_gv, step: int, K: int,
                 momentum: float, weight_decay: float, dropout_gens: list, fast: FastPath | None = None,
                 steps: Sequence[int] | None = None):
        self.packed, self.K, self.momentum, self.weight_decay = packed, K, momentum, weight_decay
        self.fast = fast or FastPath()
        packed.channels_last = self.fast.channels_last
        self._forward = packed.__call__
        if self.fast.compile:
            # dynamo caches graphs per code object, guarded on this population: drop the previous
            # populations' graphs (a reused worker would otherwise reach the recompile limit after a
            # few populations and silently run eager). dynamic=None: the full batch compiles static, a
            # second shape (the last partial batch, evaluation, V2's per-member slices) compiles once
            # with a dynamic batch size instead of once per size.
            torch.compiler.reset()
            self._forward = torch.compile(self._compiled_forward, dynamic=None)
        self.flat = flat.detach().clone().requires_grad_()
        self.buffers = buffers
        self.mom, self.gv, self.gv_norm = mom, gv, gv_norm
        self.has_gv = list(has_gv)            # host-side: which members hold a g_v (V2 may not yet)
        self.step = step                      # the population's clock: steps it ran
        # each member's own step counter (its g_v refresh when ITS step % K == 0): a member that joined
        # a running population (a refilled slot) counts from its own start, as it would alone
        self.steps = list(steps) if steps is not None else [step] * flat.shape[0]
        self.dropout_gens = dropout_gens

    @classmethod
    def from_models(cls, packed: PackedNet, models, K: int, momentum: float, weight_decay: float, dropout_gens,
                    step: int = 0, moms=None, gvs=None, gv_norms=None, fast: FastPath | None = None,
                    steps: Sequence[int] | None = None) -> "Population":
        """Stack G models (same architecture, device, dtype) with their SGD momentum buffers (None
        before the first step: 0·μ + d == d is SGD's first step exactly) and cached g_v (None: none yet);
        ``steps``: each member's step counter (default: ``step`` for all)."""
        G = len(models)
        params = [list(m.parameters()) for m in models]
        dtype = params[0][0].dtype
        row = lambda ts, like: _row(ts, like, dtype)
        flat = torch.stack([row(ps, ps) for ps in params])
        buffers = [torch.stack(bs).clone() for bs in zip(*[list(m.buffers()) for m in models])]
        moms = moms or [[None] * len(params[0])] * G
        gvs = gvs or [None] * G
        mom = torch.stack([row(ms, ps) for ms, ps in zip(moms, params)])
        has_gv = [g is not None for g in gvs]
        gv = torch.stack([row(g if g is not None else [None] * len(ps), ps) for g, ps in zip(gvs, params)])
        zero = torch.zeros((), dtype=dtype, device=flat.device)
        gv_norm = torch.stack([gv_norms[g].to(dtype) if has_gv[g] else zero for g in range(G)])
        return cls(packed, flat, buffers, mom, gv, gv_norm, has_gv, step, K, momentum, weight_decay,
                   list(dropout_gens), fast, steps)

    @torch.no_grad()
    def set_member(self, g: int, model, moms, gv, gv_norm, step: int, dropout_gen) -> None:
        """Put another member into slot g (a refilled slot): its weights, BatchNorm buffers, SGD momentum
        (None entries before its first step), cached g_v (None: none yet), step counter and dropout
        generator; every other slot is untouched."""
        params = list(model.parameters())
        self.flat[g] = _row(params, params, self.flat.dtype)
        for pop_buf, buf in zip(self.buffers, model.buffers()):
            pop_buf[g] = buf
        self.mom[g] = _row(moms, params, self.flat.dtype)
        self.has_gv[g] = gv is not None
        self.gv[g] = _row(gv if gv is not None else [None] * len(params), params, self.flat.dtype)
        self.gv_norm[g] = gv_norm.to(self.gv_norm.dtype) if gv is not None else 0.0
        self.steps[g] = step
        self.dropout_gens[g] = dropout_gen

    @property
    def G(self) -> int:
        return self.flat.shape[0]

    # ---- forward / gradients ----------------------------------------------------------------
    def _bind(self, flat, members: slice | None = None):
        if members is None:
            self.packed.bind(flat, self.buffers, self.dropout_gens)
        else:
            self.packed.bind(flat, [b[members] for b in self.buffers], self.dropout_gens[members])

    def logits(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """x: (B, G, C, H, W) -> (B, G, classes), every member on its own column."""
        self._bind(self.flat.detach() if not training else self.flat)
        self.packed.train(training)
        with self._autocast(x):
            return self._forward(x).float() if self.fast.bf16 else self._forward(x)

    def _compiled_forward(self, x):
        return self.packed(x)

    def _autocast(self, x):
        if not self.fast.bf16:
            return contextlib.nullcontext()
        return torch.autocast(x.device.type, dtype=torch.bfloat16)

    def _loss_grad(self, rows, members, x, y):
        """Per-member mean CE (g,) and d(sum of them)/d(rows): each member's own gradient row."""
        self._bind(rows, members)
        self.packed.train(True)
        with self._autocast(x):
            logits = self._forward(x).float() if self.fast.bf16 else self._forward(x)
        B, g, k = logits.shape
        # cross entropy with the classes as the outer axis: log_softmax over dim 0 of (k, g·B) vectorises
        # along the g·B samples (2.2x faster with its backward than over rows of k = 10, measured here).
        # Member-major (g, B) losses: each member's mean is a reduction over its own contiguous row, the
        # same kernel path whatever g is (a strided column mean is not: its float32 sums depend on g)
        logp = F.log_softmax(logits.permute(2, 1, 0).reshape(k, g * B), 0)
        losses = -logp.gather(0, y.t().reshape(1, g * B)).view(g, B).mean(1)
        return losses.detach(), torch.autograd.grad(losses.sum(), rows)[0]

    def _gv_rows(self, x, clean, trusted, members: list[int]):
        """Fresh g_v for ``members``: (rows (len, P) or None per member). Without a trusted subset all
        members at once (the population's kernels: each member's bits as alone); when only some are due
        (members on their own step counters), the others' BatchNorm statistics and dropout generators
        are put back afterwards, so that pass leaves them as if it had not run. With a trusted subset,
        member by member on its trusted samples (its own BatchNorm batch)."""
        if trusted is None:
            others = [g for g in range(self.G) if g not in set(members)]
            saved = self._member_state(others)
            rows = self._loss_grad(self.flat, None, x, clean)[1]
            self._put_member_state(others, saved)
            return [rows[g] for g in members]
        out = []
        for g in members:
            t = trusted[:, g] if trusted is not None else None
            if t is not None and not bool(t.any()):
                out.append(None)
                continue
            xs = x[:, g:g + 1] if t is None else x[t][:, g:g + 1]
            ys = clean[:, g:g + 1] if t is None else clean[t][:, g:g + 1]
            row = self.flat.detach()[g:g + 1].requires_grad_()
            out.append(self._loss_grad(row, slice(g, g + 1), xs, ys)[1][0])
        return out

    def _member_state(self, members: list[int]):
        """What a train-mode forward changes of these members: BatchNorm buffers, dropout generators."""
        if not members:
            return None
        idx = torch.tensor(members, device=self.flat.device)
        gens = [self.dropout_gens[g].get_state() for g in members] if self.packed.dropouts else []
        return [b.index_select(0, idx) for b in self.buffers], gens

    def _put_member_state(self, members: list[int], saved) -> None:
        if not members:
            return
        idx = torch.tensor(members, device=self.flat.device)
        bufs, gens = saved
        for b, s in zip(self.buffers, bufs):
            b.index_copy_(0, idx, s)
        for g, state in zip(members, gens):
            self.dropout_gens[g].set_state(state)

    # ---- one step of the rule ----------------------------------------------------------------
    def step_batch(self, x, noisy, clean, lam, lr, trusted=None, fresh_csv: bool = False,
                   live: Sequence[bool] | None = None) -> dict:
        """x (B, G, C, H, W) normalised; noisy, clean (B, G) labels; lam, lr (G,); trusted (B, G)
        bool or None; ``live``: which slots train (None: all), the others frozen (ended members,
        padding). Returns (G,) tensors: loss_s, gs_norm, gv_norm, cos (and c_sv with fresh_csv)."""
        loss_s, gs = self._loss_grad(self.flat, None, x, noisy)
        G = self.G
        due = [g for g in range(G) if self.steps[g] % self.K == 0 or not self.has_gv[g]]
        # only a training member's refresh is worth a g_v pass (frozen slots keep their own step phase)
        refresh = due if live is None or any(live[g] for g in due) else []
        refreshed = torch.zeros(G, dtype=torch.bool, device=gs.device)
        if refresh:
            rows = self._gv_rows(x, clean, trusted, refresh)
            if len(refresh) == G and all(r is not None for r in rows):
                self.gv = torch.stack(rows)
                self.gv_norm = torch.linalg.vector_norm(self.gv, dim=1)
                refreshed[:] = True
            else:
                for g, r in zip(refresh, rows):
                    if r is not None:
                        self.gv[g] = r
                        self.gv_norm[g] = torch.linalg.vector_norm(r)
                        refreshed[g] = True
            for g, r in zip(refresh, rows):
                self.has_gv[g] = self.has_gv[g] or r is not None
        gv, gv_norm = self.gv, self.gv_norm            # zero rows where no g_v yet: cos 0, no g_v term
        gs_norm = torch.linalg.vector_norm(gs, dim=1)
        cos = (gs * gv).sum(1) / (gs_norm * gv_norm + EPS)
        out = {"loss_s": loss_s, "gs_norm": gs_norm, "gv_norm": gv_norm.clone(), "cos": cos}
        if fresh_csv:
            out["c_sv"] = torch.where(refreshed, cos, self._fresh_cos(x, clean, trusted, gs, gs_norm))
        noisy_weight = ((1 - lam) / (gs_norm + EPS))[:, None]
        clean_weight = (lam / (gv_norm + EPS))[:, None]
        with torch.no_grad():
            mixed = gs.mul_(noisy_weight).add_(gv * clean_weight)      # the mixed gradient, in place
            if self.weight_decay:
                mixed.add_(self.flat, alpha=self.weight_decay)         # decay inside the step, as torch's SGD
            self.mom.mul_(self.momentum).add_(mixed)                   # 0·μ + d on the first step: SGD's clone(d)
            self.flat.sub_(self.mom * lr[:, None])
        self.step += 1
        self.steps = [n + 1 for n in self.steps]
        return out

    def _fresh_cos(self, x, clean, trusted, gs, gs_norm):
        """W1's c_sv: cos(g_s, a fresh g_v). That extra forward must not change training: the
        BatchNorm running statistics are put back afterwards. NaN where V2 saw no trusted sample."""
        saved = [b.clone() for b in self.buffers]
        rows = self._gv_rows(x, clean, trusted, list(range(self.G)))
        for b, s in zip(self.buffers, saved):
            b.copy_(s)
        nan = torch.full((), float("nan"), dtype=gs.dtype, device=gs.device)
        out = []
        for g, r in enumerate(rows):
            out.append(nan if r is None else torch.dot(gs[g], r) / (gs_norm[g] * torch.linalg.vector_norm(r) + EPS))
        return torch.stack(out)


def _row(tensors, like, dtype) -> torch.Tensor:
    """One member's (P,) row of ``tensors`` (a None entry: zeros shaped as that parameter of ``like``)."""
    return torch.cat([(torch.zeros_like(p) if t is None else t).detach().reshape(-1)
                      for t, p in zip(tensors, like)]).to(dtype)


# the widest float vector of the host's kernels, in bytes (AVX-512): channel-wise CPU kernels (BatchNorm's
# sums, oneDNN's channel blocks) run whole vectors of channels, then a scalar or masked tail in another order
HOST_VECTOR_BYTES = 64


def padded_size(G: int, model: str, channel_counts: Iterable[int], dtype: torch.dtype, device: torch.device) -> int:
    """The population size that G members run at. On the host, for a model that packs there by default
    (the digits TinyCNN): at least 2 (a population of one takes other kernels: dense convolutions, not
    grouped ones), even, and a multiple of the step at which G·c channels fill whole vectors for every
    per-member channel count c (no member in a vector tail). Then each member's numbers are the same
    bits at every population size and position, alone included (tests/test_batched.py). Otherwise G:
    a compute-bound CIFAR model alone on a CPU would pay double, and GPU kernels choose algorithms by
    shape anyway (docs/PACKING.md, "Reproducibility")."""
    if device.type != "cpu" or default_group_size(model, on_gpu=False) == 1:
        return G
    lanes = HOST_VECTOR_BYTES * 8 // torch.finfo(dtype).bits      # 16 float32, 8 float64
    # an even size too: some kernels take two vectors at a time (measured: the global pool's mean over
    # 3 x 16 channels; the 32/64-channel TinyCNN at width 4 with 3 or 5 members)
    step = 2
    for c in channel_counts:
        step = math.lcm(step, lanes // math.gcd(lanes, c))
    return -(-max(G, 2) // step) * step


# a population keeps its training images normalised in its dtype when that copy is at most this big
# (the digits set: 0.4 MB in float32; CIFAR without augmentation would be 614 MB: normalised per batch)
NORMALISED_COPY_MAX_BYTES = 64 * 2**20


def _rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """t[idx] for an index tensor of any shape, as one index_select along dim 0."""
    return t.index_select(0, idx.reshape(-1)).view(*idx.shape, *t.shape[1:])


def member_trials(cfgs: Sequence[TrialConfig], data: DataSet, states: Iterable[dict] | None = None) -> list[Trial]:
    """The ``Trial`` of each config, built one after another on ONE device copy of ``data`` (each Trial
    moves its data; the members' copies are dropped as they are made, so at most two exist at once),
    each loaded from its checkpoint state when ``states`` gives them (read lazily, in order)."""
    trials: list[Trial] = []
    for c, st in zip(cfgs, states if states is not None else [None] * len(cfgs)):
        t = Trial(c, data=data)
        if trials:
            t.data = trials[0].data
        if st is not None:
            t.load_state_dict(st)
        trials.append(t)
    return trials


# a decision rule: a running member's Trial at one of its evaluations -> ("H" or "not_H", P(branch)) to
# stop it there, or None to let it train on
Decision = Callable[[Trial], "tuple[str, float] | None"]


@functools.lru_cache(maxsize=None)
def _classifier(dataset: str):
    """The calibrated branch classifier of a data set (dgl_ray.early), loaded once per process."""
    from .early import BranchClassifier    # another slice's module, merged later (the coordinator may move it up)
    return BranchClassifier.load(dataset)


def calibrated_decision(trial: Trial) -> tuple[str, float] | None:
    """The default decision rule: for a trial with ``decide_early`` δ, its data set's calibrated branch
    classifier on the test errors evaluated so far decides once P(branch) >= 1 - δ (docs/SWEEPS.md);
    a trial without ``decide_early`` is never decided."""
    delta = trial.cfg.decide_early
    if delta is None:
        return None
    seen = [r for r in trial.history if math.isfinite(r["test_error"])]
    return _classifier(trial.cfg.dataset).decide([r["epoch"] for r in seen], [r["test_error"] for r in seen],
                                                  trial.cfg.epochs, list(trial.cfg.lr_milestones), delta)


class BatchedTrials:
    """G trials (members) trained as one population. ``trials[i]`` is a real ``Trial`` (its config,
    noisy labels, generators, history, status, clock, model/optimizer for checkpoints); ``layout[s]``
    is the member that holds slot s of the population; ``sync_trials()`` writes the population's state
    back into the members.

    Each member keeps its own clock: its epoch (``Trial.epoch``: its λ and LR schedules, its evaluations)
    and its step counter (``Population.steps``: its g_v refresh), so a member that starts later trains
    exactly as alone.

    Slots and a queue (refill): with ``slots=S`` fewer than the members, S members train and the others
    wait, in member order; when a member ends (completed, diverged or decided) the next queued member
    takes its slot at the next epoch boundary, with its own init, labels, data order, schedules, step
    counter and RNGs, as alone. Once the queue is empty such a population shrinks: at an epoch boundary
    where its running members fit a smaller padded size it is rebuilt with them only (docs/PACKING.md,
    "Refilled slots", measures frozen against dropped slots). So does a population without ``slots`` whose
    members may be decided early (``decide_early``): a decision is there to free the device time. Without
    either the population keeps its size G to the end: a trial that ends early keeps its slot, frozen (LR 0,
    no data drawn from its generators, never reported again), so the kernels the others run, and with them
    their float32 numbers on a GPU, do not change when another member ends.

    Early decisions: at each evaluation of a running member before its last epoch, ``decider(trial)``
    (default :func:`calibrated_decision`: only members with ``decide_early``) may stop it: its row gets
    status "decided", ``decided_branch`` and ``p_branch``, and it ends there."""

    def __init__(self, configs: Sequence[TrialConfig | dict] | None = None, data: DataSet | None = None,
                 trials: Sequence[Trial] | None = None, *, slots: int | None = None,
                 layout: Sequence[int] | None = None, decider: Decision | None = None):
        """Build G fresh trials from ``configs``, or continue ``trials`` (e.g. each restored with
        ``Trial.load_state_dict``, each at its own epoch and step): weights, BatchNorm statistics,
        momentum, cached g_v and step counter are stacked as they are; trials that ended keep a frozen
        slot (without ``slots``). ``slots``: how many members train at once (the rest queue);
        ``layout``: the member of each slot when continuing a refilling population (its
        :attr:`layout` when it stopped; default: the running members that started, then the queue).
        ``decider``: the decision rule for every running member (tests inject one); default
        :func:`calibrated_decision`. The device fast path is the configs' (``FastPath.of``: one of the
        fields a group shares)."""
        if trials is None:
            cfgs = [TrialConfig.from_dict(c) if isinstance(c, dict) else c.resolved() for c in configs]
            _check_group(cfgs)
            data = data if data is not None else load_dataset(cfgs[0])
            trials = member_trials(cfgs, data)          # each draws its own init, labels, generators
        else:
            _check_group([t.cfg for t in trials])
        if slots is not None and not (isinstance(slots, int) and not isinstance(slots, bool) and slots >= 1):
            raise ConfigError(f"slots={slots!r} must be an integer >= 1 (or None: a slot per member)")
        self.trials = list(trials)
        # a population that refills, or whose members may be decided early, drops ended members' slots
        # (it shrinks); others keep them, frozen, so a member's float32 kernels never change mid-run
        self.refills = slots is not None or any(t.cfg.decide_early is not None for t in self.trials)
        self.decider = decider or calibrated_decision
        t0 = self.trials[0]
        for t in self.trials[1:]:       # continued trials moved their data each (the same data set: SHARED)
            t.data = t0.data
        self.cfg, self.data, self.device, self.dtype = t0.cfg, t0.data, t0.device, t0.dtype
        self.layout = self._checked_layout(layout) if layout is not None else self._first_layout(slots)
        placed = set(self.layout)
        self.queue = [i for i, t in enumerate(self.trials) if t.status == STATUS_RUNNING and i not in placed]
        live = [self.trials[m] for m in self.layout if self.trials[m].status == STATUS_RUNNING]
        first = (live or [self.trials[self.layout[0]]])[0]
        self.epoch = first.epoch        # the population's clock: epochs it ran (each member has its own)
        self.wall_time = max(t.wall_time for t in self.trials)
        self.fast = FastPath.of(self.cfg)
        if self.fast.tf32 and self.device.type != "cuda":
            warnings.warn(f"tf32=True is a no-op on device {self.device.type!r} (TF32 is a math mode of NVIDIA "
                          f"GPUs): this trial runs plain float32", RuntimeWarning, stacklevel=2)
        if self.device.type == "cpu":
            keep_freed_memory()      # reuse freed activation buffers instead of page-faulting fresh ones
        self._set_math_modes()
        self.packed = PackedNet(t0.model, self.cfg.model)
        self._build(first.stepper.step)
        # (C, 1, 1): broadcast over any leading axes, (N, C, H, W) and (B, G, C, H, W) alike
        self._mean = torch.tensor(self.data.mean, dtype=self.dtype, device=self.device).view(-1, 1, 1)
        self._std = torch.tensor(self.data.std, dtype=self.dtype, device=self.device).view(-1, 1, 1)
        # without augmentation an image's normalised values never change: compute them once (the same
        # elementwise ops as per batch, so the same bits), when the copy is small
        x = self.data.x_train
        small = x.numel() * torch.finfo(self.dtype).bits // 8 <= NORMALISED_COPY_MAX_BYTES
        self._x_train = self._normalise(x) if not self.cfg.augment and small else None

    def _first_layout(self, slots: int | None) -> list[int]:
        """Without slots: member i in slot i. With S slots: the running members that started (a
        continued population), then those that did not, S at most; all ended: the first S members."""
        everyone = list(range(len(self.trials)))
        if slots is None:
            return everyone
        running = [i for i in everyone if self.trials[i].status == STATUS_RUNNING]
        started = [i for i in running if self.trials[i].epoch > 0]
        if len(started) > slots:
            raise ConfigError(f"{len(started)} members have started, more than slots={slots}; continue them "
                              f"with their layout or more slots")
        return (started + [i for i in running if self.trials[i].epoch == 0])[:slots] or everyone[:slots]

    def _checked_layout(self, layout: Sequence[int]) -> list[int]:
        out = [int(m) for m in layout]
        if not out or len(set(out)) != len(out) or not all(0 <= m < len(self.trials) for m in out):
            raise ConfigError(f"layout={list(layout)!r}: each slot must hold a different member 0..{len(self.trials) - 1}")
        return out

    def _build(self, clock: int) -> None:
        """The population of the layout's members, padded: frozen copies of the first running member fill
        it up to a size whose channels fill whole vectors (``padded_size``): then no member's channels sit
        in a vector tail."""
        occupants = [self.trials[m] for m in self.layout]
        live = [t for t in occupants if t.status == STATUS_RUNNING] or occupants
        self.pad = padded_size(len(occupants), self.cfg.model, self.packed.channel_counts, self.dtype,
                               self.device) - len(occupants)
        self._slots = occupants + [live[0]] * self.pad
        self.pop = self._population(self._slots, clock)
        self._sums = self._new_sums()      # per slot, summed over the steps since its last evaluation
        self._since = [0] * len(self._slots)     # per slot: steps since its member's last evaluation

    def _normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw images (any leading axes) -> the population's dtype, normalised: DataSet.normalise's
        arithmetic with the mean/std tensors made once, not per batch."""
        return (raw.to(self.dtype) / self.data.scale - self._mean) / self._std

    @property
    def G(self) -> int:
        """The members (queued ones included)."""
        return len(self.trials)

    @property
    def n_slots(self) -> int:
        """The slots that hold a member (the population has ``pad`` more: frozen padding)."""
        return len(self.layout)

    @property
    def active(self) -> list[int]:
        """The members training now (running, in a slot), in member order."""
        return sorted(m for m in self.layout if self.trials[m].status == STATUS_RUNNING)

    @property
    def done(self) -> bool:
        """Every member ended: none running, none queued."""
        return not self.active and not self.queue

    def _set_math_modes(self) -> None:
        """TF32 and cudnn autotuning are process-wide switches: set to this population's at construction
        and again when it runs (another population of the process may have set its own meanwhile)."""
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.fast.tf32
            if not self.cfg.deterministic:
                torch.backends.cudnn.benchmark = True      # fastest convolution algorithms for fixed shapes

    @property
    def step(self) -> int:
        """The population's clock in steps (each member's own counter: ``pop.steps``)."""
        return self.pop.step

    def _population(self, trials: list[Trial], clock: int) -> Population:
        moms = [_momentum(t) for t in trials]
        n = self.n_slots
        gens = [t.dropout_gen for t in trials[:n]]
        gens += [torch.Generator(device=self.device).manual_seed(0) for _ in trials[n:]]   # padding's own
        return Population.from_models(
            self.packed, [t.model for t in trials], self.cfg.K, self.cfg.momentum, self.cfg.weight_decay,
            gens, step=clock, moms=moms,
            gvs=[t.stepper.cached_gv for t in trials], gv_norms=[t.stepper.cached_gv_norm for t in trials],
            fast=self.fast, steps=[t.stepper.step for t in trials])

    def _new_sums(self) -> dict:
        zeros = lambda: torch.zeros(len(self._slots), dtype=torch.float64, device=self.device)
        return {"loss": zeros(), "cos": zeros(), "gs": zeros(), "gv": zeros(), "csv": zeros(), "csv_n": zeros()}

    # ---- slots: refill and shrink ---------------------------------------------------------------------
    def _refill(self) -> None:
        """At an epoch boundary: each slot whose member ended takes the next queued member; a refilling
        population whose queue is empty drops its ended slots once that makes it smaller."""
        for s, m in enumerate(self.layout):
            if self.queue and self.trials[m].status != STATUS_RUNNING:
                self.layout[s] = self.queue.pop(0)
                self._join(s, self.trials[self.layout[s]])
        if not self.refills or self.queue:
            return
        running = [s for s, m in enumerate(self.layout) if self.trials[m].status == STATUS_RUNNING]
        if running and padded_size(len(running), self.cfg.model, self.packed.channel_counts, self.dtype,
                                   self.device) < len(self._slots):
            self._shrink(running)

    def _join(self, s: int, t: Trial) -> None:
        """Member ``t`` takes slot s: its own weights, buffers, momentum, g_v, step counter, generators."""
        self.pop.set_member(s, t.model, _momentum(t), t.stepper.cached_gv, t.stepper.cached_gv_norm,
                            t.stepper.step, t.dropout_gen)
        self._slots[s] = t
        self._reset_sums(s)

    def _shrink(self, keep: list[int]) -> None:
        """Rebuild the population with the members of slots ``keep`` only, their sums since their last
        evaluation carried over."""
        self.sync_trials()
        sums = {k: v[keep].clone() for k, v in self._sums.items()}
        since = [self._since[s] for s in keep]
        self.layout = [self.layout[s] for s in keep]
        self._build(self.pop.step)
        for k, v in sums.items():
            self._sums[k][:len(keep)] = v
        self._since[:len(keep)] = since

    def _reset_sums(self, s: int) -> None:
        for v in self._sums.values():
            v[s] = 0
        self._since[s] = 0

    # ---- one epoch of every slot ------------------------------------------------------------------------
    def train_epoch(self) -> None:
        """One epoch of every running member, each at its own epoch of its schedules."""
        cfg, data = self.cfg, self.data
        slots = self._slots                       # the members, then the padding (frozen: never live)
        live = [t.status == STATUS_RUNNING for t in slots[:self.n_slots]] + [False] * self.pad
        lam = torch.tensor([t.plans[t.epoch].lam if ok else 0.0 for t, ok in zip(slots, live)],
                           dtype=self.dtype, device=self.device)
        lr = torch.tensor([t.lr(t.epoch) if ok else 0.0 for t, ok in zip(slots, live)],
                          dtype=self.dtype, device=self.device)
        n_train = len(data.y_train)
        # each trial's data order from its own generator, as a trial alone draws it (frozen slots: none)
        fixed = torch.arange(n_train, device=self.device)
        perms = torch.stack([torch.randperm(n_train, generator=t.gen, device=self.device) if ok else fixed
                             for t, ok in zip(slots, live)], 1)                                         # (N, G)
        noisy = torch.stack([t.y_noisy for t in slots], 1)                                               # (N, G)
        trusted = None if cfg.trusted_fraction is None else torch.stack([t.trusted for t in slots], 1)
        sums = self._sums
        steps = 0
        for start in range(0, n_train, cfg.batch_size):      # no drop_last, as the paper's DataLoader
            idx = perms[start:start + cfg.batch_size]        # (B, G)
            if cfg.augment:   # per trial, in batch order: the same draws from each generator as alone
                raw = torch.stack([augment_batch(data.x_train[idx[:, j]], t.gen) if ok else data.x_train[idx[:, j]]
                                   for j, (t, ok) in enumerate(zip(slots, live))], 1)
                x = self._normalise(raw)
            elif self._x_train is not None:   # (B, G, C, H, W): one gather of images normalised once
                x = _rows(self._x_train, idx)
            else:
                x = self._normalise(_rows(data.x_train, idx))
            # gathers along dim 0 (index_select / gather), not advanced indexing: 4x cheaper on the host
            out = self.pop.step_batch(x, noisy.gather(0, idx), _rows(data.y_train, idx), lam, lr,
                                      trusted=None if trusted is None else trusted.gather(0, idx),
                                      fresh_csv=cfg.fresh_csv, live=live)
            sums["loss"] += out["loss_s"]
            sums["cos"] += out["cos"]
            sums["gs"] += out["gs_norm"]
            sums["gv"] += out["gv_norm"]
            if cfg.fresh_csv:   # undefined (NaN) on V2 steps without a trusted sample: averaged over the rest
                ok = torch.isfinite(out["c_sv"])
                sums["csv"] += torch.where(ok, out["c_sv"], 0.0)
                sums["csv_n"] += ok
            steps += 1
        self.epoch += 1
        self._since = [n + steps for n in self._since]
        for t, ok in zip(slots, live):
            if ok:
                t.epoch += 1

    def _finite(self) -> torch.Tensor:
        sums = self._sums
        ok = torch.isfinite(torch.stack([sums["loss"], sums["gs"], sums["gv"]])).all(0)
        return ok & torch.isfinite(self.pop.flat.detach()).all(1)

    @torch.no_grad()
    def evaluate(self) -> torch.Tensor:
        """Test errors (n_slots,) of every slot's member, eval mode (each member's running statistics)."""
        d = self.data
        slots = len(self._slots)
        wrong = torch.zeros(slots, dtype=torch.int64, device=self.device)
        # on the host, test images x members per forward as a training batch of 64 members holds: the
        # whole digits test set x 25 members made 18 MB activations, which glibc then kept (allocator.py)
        n = 1000 if self.device.type == "cuda" else max(32, 2048 // slots)
        for s in range(0, len(d.y_test), n):
            x = self._normalise(d.x_test[s:s + n].unsqueeze(1))
            logits = self.pop.logits(x.expand(-1, slots, *x.shape[2:]), training=False)
            wrong += (logits.argmax(2) != d.y_test[s:s + n, None]).sum(0)
        return wrong[:self.n_slots].double() / len(d.y_test)

    # ---- the loop -------------------------------------------------------------------------------------
    def run(self, on_eval: Callable[[dict, int], None] | None = None, max_epochs: int | None = None) -> list[dict]:
        """Train every member to the end of its schedule (or ``max_epochs`` more epochs of the
        population), queued members as slots free up; each member is evaluated every ``eval_every`` of
        its own epochs and at its end. ``on_eval(metrics, i)`` gets member i's metrics dict for each
        evaluation, after member i's state was written back (``trials[i].save`` checkpoints it). A member
        whose loss, gradient norms or weights are not finite at the end of an epoch is reported
        'diverged' (test_error NaN) and ends; one the decision rule stops is reported 'decided' and
        ends; the others go on. Returns one ``summary()`` per member, in config order."""
        cfg = self.cfg
        self._set_math_modes()
        ran = 0
        while not self.done and (max_epochs is None or ran < max_epochs):
            self._refill()
            t0 = time.perf_counter()
            live = [s for s, m in enumerate(self.layout) if self.trials[m].status == STATUS_RUNNING]
            self.train_epoch()
            ran += 1
            finite = self._finite().tolist()                          # the one host sync of the epoch
            due = {s: self._slots[s].epoch == cfg.epochs or self._slots[s].epoch % cfg.eval_every == 0 for s in live}
            report = [s for s in live if due[s] or not finite[s]]
            evaluating = any(due[s] for s in report)
            test_errors = self.evaluate().cpu().tolist() if evaluating else [float("nan")] * self.n_slots
            sums = {k: v.tolist() for k, v in self._sums.items()}
            epoch_time = time.perf_counter() - t0
            self.wall_time += epoch_time
            for s in live:
                self._slots[s].wall_time += epoch_time
            if not report:
                continue
            self.sync_trials([self.layout[s] for s in report])
            rows = []
            for s in report:
                t = self._slots[s]
                last = t.epoch == cfg.epochs
                t.status = STATUS_DIVERGED if not finite[s] else STATUS_COMPLETED if last else STATUS_RUNNING
                row = metrics_row(t, {k: sums[k][s] for k in sums}, self._since[s],
                                  test_errors[s] if finite[s] else float("nan"), epoch_time)
                t.history.append(row)
                decision = self.decider(t) if t.status == STATUS_RUNNING and due[s] else None
                if decision is not None:
                    t.decide(*decision)
                    row.update(status=t.status, decided_branch=t.decided_branch, p_branch=t.p_branch)
                rows.append((row, self.layout[s]))
                self._reset_sums(s)
            if on_eval is not None:
                for row, i in rows:
                    on_eval(row, i)
        return [t.summary() for t in self.trials]

    # ---- per-trial state ----------------------------------------------------------------------------
    @torch.no_grad()
    def sync_trials(self, members: list[int] | None = None) -> None:
        """Write the population's state of these members (indices; the running ones by default) into
        their ``Trial`` objects: weights, BatchNorm buffers, SGD momentum, cached g_v, step counter."""
        pop = self.pop
        params_of = self.packed.views(pop.flat.detach())     # per parameter: (slots, *shape)
        moms_of = self.packed.views(pop.mom)
        gvs_of = self.packed.views(pop.gv)
        slot_of = {m: s for s, m in enumerate(self.layout)}
        for i in (self.active if members is None else members):
            t, s = self.trials[i], slot_of[i]
            params = list(t.model.parameters())
            for param, rows in zip(params, params_of):
                param.copy_(rows[s])
            for buf, pop_buf in zip(t.model.buffers(), pop.buffers):
                buf.copy_(pop_buf[s])
            if pop.steps[s]:
                for param, rows in zip(params, moms_of):
                    t.opt.state[param]["momentum_buffer"] = rows[s].clone()
            for group in t.opt.param_groups:
                group["lr"] = t.lr(max(t.epoch - 1, 0))
            t.stepper.step = pop.steps[s]
            if pop.has_gv[s]:
                t.stepper.cached_gv = [rows[s].clone() for rows in gvs_of]
                t.stepper.cached_gv_norm = pop.gv_norm[s].clone()


def _momentum(t: Trial) -> list:
    """A trial's SGD momentum buffers per parameter (None before its first step)."""
    return [t.opt.state.get(p, {}).get("momentum_buffer") for p in t.model.parameters()]


def metrics_row(trial: Trial, sums: dict[str, float], steps: int, test_error: float, epoch_time: float) -> dict:
    """A trial's metrics row of the evaluation that ends its current epoch: its schedule's λ and LR,
    and the means over the ``steps`` steps since the last evaluation of the population's per-step
    ``sums`` (loss, cos, gs, gv, csv and csv_n: c_sv's count of defined steps, W1 only)."""
    plan = trial.plans[trial.epoch - 1]
    mean_over = max(steps, 1)
    n_csv = sums["csv_n"]
    return {
        "epoch": trial.epoch,
        "global_step": trial.stepper.step,
        "lambda": plan.lam,
        "lr": trial.lr(trial.epoch - 1),
        "phase": plan.phase,
        "direction": plan.direction,
        "step_index": plan.step_index,
        "test_error": test_error,
        "train_loss": sums["loss"] / mean_over,
        "avg_cos": sums["cos"] / mean_over,
        "gs_norm": sums["gs"] / mean_over,
        "gv_norm": sums["gv"] / mean_over,
        "c_sv": sums["csv"] / n_csv if trial.cfg.fresh_csv and n_csv else float("nan"),
        "wall_time": trial.wall_time,
        "epoch_time": epoch_time,
        "status": trial.status,
    }


def run_trial(trial: Trial, on_eval: Callable[[dict, Trial], None] | None = None,
              max_epochs: int | None = None) -> dict:
    """Train one trial until its schedule ends (or ``max_epochs`` more epochs), evaluating every
    ``eval_every`` epochs and at the end; ``on_eval(metrics, trial)`` sees each evaluation (print it,
    report it to Tune, checkpoint the trial). Returns ``trial.summary()``. A trial alone is a
    population of one: the same loop and update rule as packed trials."""
    forward = None if on_eval is None else (lambda metrics, i: on_eval(metrics, trial))
    BatchedTrials(trials=[trial]).run(on_eval=forward, max_epochs=max_epochs)
    return trial.summary()


def group_configs(configs: Sequence[TrialConfig | dict], max_size: int = 100) -> list[list[int]]:
    """Split any list of trial configs into groups that one population can run: equal ``SHARED``
    fields and V2-ness, at most ``max_size`` trials each, order kept inside a group. Returns lists of
    indices into ``configs``."""
    keys: dict = {}
    memo: dict = {}     # the group key depends on neither seed nor λ: resolve each config shape once
    for i, c in enumerate(configs):
        m = shape_key(c) if isinstance(c, dict) else id(c)
        if m not in memo:
            memo[m] = _group_key(TrialConfig.from_dict(c) if isinstance(c, dict) else c.resolved())
        keys.setdefault(memo[m], []).append(i)
    return [idx[s:s + max_size] for idx in keys.values() for s in range(0, len(idx), max_size)]


def run_group(configs: Sequence[TrialConfig | dict], on_eval: Callable[[dict, int], None] | None = None,
              data: DataSet | None = None, max_size: int | None = None) -> list[dict]:
    """Train any list of trials, packed: configs that can share a population are trained as one
    (``group_configs``), the rest in populations of their own. ``on_eval(metrics, i)`` sees trial i's
    metrics at each evaluation (i indexes ``configs``); returns one summary per config, in order."""
    cfgs = [TrialConfig.from_dict(c) if isinstance(c, dict) else c.resolved() for c in configs]
    out: list = [None] * len(cfgs)
    for idx in group_configs(cfgs, max_size or len(cfgs)):
        mine = data if data is not None and data.name == cfgs[idx[0]].dataset else None   # a mix: each its own data
        grp = BatchedTrials([cfgs[i] for i in idx], data=mine)
        for i, s in zip(idx, grp.run(on_eval=None if on_eval is None else (lambda m, j, idx=idx: on_eval(m, idx[j])))):
            out[i] = s
    return out



# Default population size per (model, device kind). CPU: the digits TinyCNN is overhead-bound, so
# packing pays (benchmarks/RESULTS.md); the CIFAR models are compute-bound on a CPU core and gain
# little. GPU: a ResNet-18 trial leaves an H100 mostly idle; 8 is the starting point until
# `python -m benchmarks.gpu_check` measures G = 4, 8, 16 (RESULTS.md says which were measured).
DEFAULT_GROUP_SIZE = {("tinycnn", "cpu"): 25, ("tinycnn", "cuda"): 64}
DEFAULT_GROUP_SIZE_OTHER = {"cpu": 1, "cuda": 8}


def default_group_size(model: str, on_gpu: bool) -> int:
    """The population size a sweep uses for this model when --group-size is not given: a fixed
    function of the model and the device kind, never of the plan (so a rerun packs the same way)."""
    kind = "cuda" if on_gpu else "cpu"
    return DEFAULT_GROUP_SIZE.get((model, kind), DEFAULT_GROUP_SIZE_OTHER[kind])
