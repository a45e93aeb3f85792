"""One trial of dual-gradient learning as a per-member state record: its config, data, labels,
generators, model and optimizer, history, status, summary and checkpoint. The population
(dgl_ray.batched) trains it, alone or packed with others, and writes its metrics rows:

    from dgl_ray.batched import run_trial
    trial = Trial({"dataset": "digits", "lambda": 0.3, "eta": 0.4, "seed": 0, "epochs": 30})
    summary = run_trial(trial, on_eval=print)  # a population of one; one metrics dict per evaluation

Torch only (no Ray): dgl_ray.tune wraps this class. Every per-trial choice lives in the config;
everything that changes while training lives in ``Trial.state_dict()``.
"""
from __future__ import annotations

import math
import random

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import TrialConfig
from .data import DataSet, load_dataset
from .errors import ConfigError
from .models import build_model, check_model_input
from .noise import make_noisy_labels, trusted_mask
from .schedules import expand_lambda_schedule, lr_at

STATUS_RUNNING, STATUS_COMPLETED, STATUS_DIVERGED = "running", "completed", "diverged"
# stopped early by a calibrated decision on its final branch: its last error is NOT a final error
STATUS_DECIDED = "decided"
BRANCHES = ("H", "not_H")        # a decided trial's branch (dgl_ray.paper.OUTCOMES without the trap)
# dropout masks come from a generator of their own (not the global RNG): the same masks alone and packed
DROPOUT_SEED_OFFSET = 0x5EED_D0


class StepState:
    """What the update rule carries from step to step for one trial (checkpointed): the global step
    counter (the notebook's cached_gv_ref['step']) and the cached g_v with its norm. The rule itself
    is ``dgl_ray.batched.Population``; these are a trial's slice of it."""

    def __init__(self):
        self.step = 0
        self.cached_gv: list[torch.Tensor] | None = None
        self.cached_gv_norm: torch.Tensor | None = None

    def state_dict(self) -> dict:
        return {"step": self.step, "cached_gv": self.cached_gv, "cached_gv_norm": self.cached_gv_norm}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.cached_gv = state["cached_gv"]
        self.cached_gv_norm = state["cached_gv_norm"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name!r} but no CUDA GPU is visible; use --device cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """The notebooks' set_seed(seed): python, numpy and torch (all devices) RNGs. Called per trial,
    so a reused process (Ray actor reuse) starts each trial from the same state."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: DataSet, dtype, batch_size: int = 1000) -> float:
    """Test error (fraction) in eval mode; one host sync at the end."""
    was_training = model.training
    model.eval()
    wrong = torch.zeros((), dtype=torch.int64, device=data.x_test.device)
    for start in range(0, len(data.y_test), batch_size):
        x = data.normalise(data.x_test[start:start + batch_size], dtype)
        wrong += (model(x).argmax(1) != data.y_test[start:start + batch_size]).sum()
    model.train(was_training)
    return wrong.item() / len(data.y_test)


class Trial:
    def __init__(self, config: TrialConfig | dict, data: DataSet | None = None):
        cfg = TrialConfig.from_dict(config) if isinstance(config, dict) else config.resolved()
        self.cfg = cfg
        self.plans = expand_lambda_schedule(cfg.lambda_schedule)
        self.device = resolve_device(cfg.device)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        if cfg.deterministic:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False

        cpu_data = data if data is not None else load_dataset(cfg)
        self.data = cpu_data.to(self.device)
        noisy = make_noisy_labels(cpu_data.y_train.numpy(), cfg.noise, cfg.eta, cfg.seed,
                                  cpu_data.num_classes, cfg.noise_convention)
        self.y_noisy = torch.from_numpy(noisy).to(self.device)
        self.trusted = None
        if cfg.trusted_fraction is not None:
            self.trusted = torch.from_numpy(trusted_mask(len(noisy), cfg.trusted_fraction, cfg.seed)).to(self.device)

        seed_everything(cfg.seed)          # model init draws from the seeded global RNG, as the paper's
        self.model_meta = {"model": cfg.model, "width": float(cfg.width), "num_classes": cpu_data.num_classes,
                           "input_shape": list(cpu_data.shape)}
        self.model = build_model(cfg.model, cpu_data.num_classes, cpu_data.shape[0], cfg.width)
        self.model.to(device=self.device, dtype=self.dtype)
        check_model_input(self.model, cfg.model, cpu_data.shape, cpu_data.num_classes, cfg.dataset)
        self.init_meta = None
        if cfg.init_checkpoint:
            # load_state_dict copies into the parameters in place: device and dtype stay as set above
            self.init_meta = ckpt.load_init_weights(cfg.init_checkpoint, self.model, self.model_meta)

        # fresh optimizer (also when starting from a checkpoint: the paper's T/W protocols). It holds
        # the trial's SGD state (momentum, LR) in torch's checkpoint format; the step is the population's.
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.lr(0), momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay)
        self.stepper = StepState()
        self.gen = torch.Generator(device=self.device).manual_seed(cfg.seed)  # data order + augmentation
        self.dropout_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + DROPOUT_SEED_OFFSET)
        self.epoch = 0                     # completed epochs
        self.history: list[dict] = []
        self.status = STATUS_RUNNING
        self.wall_time = 0.0
        self.decided_branch: str | None = None     # set with status "decided" (``decide``)
        self.p_branch: float | None = None

    def lr(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (0-based) under the trial's LR schedule."""
        cfg = self.cfg
        return lr_at(epoch, cfg.lr, cfg.lr_milestones, cfg.lr_gamma, cfg.lr_multiplier)

    def decide(self, branch: str, p: float) -> None:
        """End this trial early on a decision: its final branch is ``branch`` with probability ``p``."""
        if branch not in BRANCHES:
            raise ValueError(f"decided branch {branch!r}; allowed: {', '.join(BRANCHES)}")
        self.status, self.decided_branch, self.p_branch = STATUS_DECIDED, branch, float(p)

    def summary(self) -> dict:
        last = self.history[-1] if self.history else {}
        cfg = self.cfg
        err = last.get("test_error")
        final = self.status != STATUS_DECIDED and not (err is None or (isinstance(err, float) and math.isnan(err)))
        out = {
            "status": self.status,
            "final_error": err if final else None,
            "lambda": last.get("lambda", self.plans[0].lam),
            "eta": cfg.eta, "seed": cfg.seed, "epochs": self.epoch, "epochs_planned": cfg.epochs,
            "dataset": cfg.dataset, "synthetic": bool(self.data.synthetic), "model": cfg.model, "width": cfg.width,
            "K": cfg.K, "noise": cfg.noise, "global_step": self.stepper.step, "wall_time": round(self.wall_time, 3),
        }
        if self.status == STATUS_DECIDED:
            out.update(decided_branch=self.decided_branch, p_branch=self.p_branch, decided_error=err)
        if self.status == STATUS_DIVERGED:
            out["reason"] = f"non-finite loss, gradient norm or weights in epoch {self.epoch}"
        if cfg.origin:
            out["origin"] = cfg.origin
        if self.init_meta is not None and self.init_meta.get("final_error") is not None:
            out["init_error"] = self.init_meta["final_error"]
        return out

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "config": self.cfg.to_dict(),
            "model_meta": self.model_meta,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "stepper": self.stepper.state_dict(),
            "epoch": self.epoch,
            "history": list(self.history),
            "status": self.status,
            "decision": {"branch": self.decided_branch, "p": self.p_branch},
            "wall_time": self.wall_time,
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "data": self.gen.get_state(),
                "dropout": self.dropout_gen.get_state(),
            },
        }

    def load_state_dict(self, state: dict) -> None:
        if state["model_meta"] != self.model_meta:
            raise ConfigError(f"checkpoint holds {state['model_meta']}; this trial builds {self.model_meta}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        stepper = dict(state["stepper"])
        if stepper["cached_gv"] is not None:
            stepper["cached_gv"] = [t.to(self.device) for t in stepper["cached_gv"]]
            stepper["cached_gv_norm"] = stepper["cached_gv_norm"].to(self.device)
        self.stepper.load_state_dict(stepper)
        self.epoch, self.history, self.status = state["epoch"], list(state["history"]), state["status"]
        self.wall_time = state["wall_time"]
        decision = state.get("decision") or {}      # absent in checkpoints written before early decisions
        self.decided_branch, self.p_branch = decision.get("branch"), decision.get("p")
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.gen.set_state(rng["data"])   # a generator's state is a CPU byte tensor on every device
        if "dropout" in rng:
            self.dropout_gen.set_state(rng["dropout"])

    def save(self, path: str) -> None:
        ckpt.save(self.state_dict(), path)

    @classmethod
    def resume(cls, path: str, data: DataSet | None = None, **overrides) -> "Trial":
        """Continue a saved trial; ``overrides`` may change execution fields (device, ...)."""
        state = ckpt.load(path)
        cfg = dict(state["config"])
        if "lam" in cfg:                 # a checkpoint written before λ had one spelling
            cfg["lambda"] = cfg.pop("lam")
        allowed = {"device", "data_root", "download", "deterministic"}
        bad = set(overrides) - allowed
        if bad:
            raise ConfigError(f"resume can change only {sorted(allowed)}; got {sorted(bad)}")
        cfg.update(overrides)
        trial = cls(cfg, data=data)
        trial.load_state_dict(state)
        return trial
