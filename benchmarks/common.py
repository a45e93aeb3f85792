"""Shared pieces of the benchmarks: the reference loop (the seed notebook's), timing, memory."""
from __future__ import annotations

import copy
import os
import platform
import resource
import statistics
import sys
import time

import torch

from dgl_ray.step import ReferenceDualGradient
from dgl_ray.trainer import Trial, evaluate


def set_threads(n: int) -> None:
    """Deliberate thread count: several torch processes on 2 cores with default threads are 10-30x slower."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def peak_rss_mb(children: bool = False) -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2**20   # KiB on Linux, bytes on macOS


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        cpu = f"{names[0]} x{len(names)}" if names else cpu
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} logical CPUs, {gpu}, torch {torch.__version__}, threads {torch.get_num_threads()}"


def median(xs) -> float:
    return statistics.median(xs)


class ReferenceRun:
    """One trial trained by the seed notebook's loop: its train_one_epoch body (ReferenceDualGradient:
    flat vector copies, retain_graph, per-parameter write-back), batches drawn by a plain shuffled
    index loop over tensors (no DataLoader: the digits set is 1,400 images), evaluation per epoch.
    Built from a ``Trial`` so it starts from the same init, noisy labels and data."""

    def __init__(self, cfg: dict, data):
        t = Trial(cfg, data=data)
        self.t = t
        self.model = copy.deepcopy(t.model)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=t.cfg.lr, momentum=t.cfg.momentum,
                                   weight_decay=t.cfg.weight_decay)
        self.ref = ReferenceDualGradient(self.model, self.opt, t.cfg.K)
        self.gen = torch.Generator().manual_seed(t.cfg.seed)
        self.epoch = 0

    def train_epoch(self) -> float:
        t, d = self.t, self.t.data
        lam = t.plans[self.epoch].lam
        for g in self.opt.param_groups:
            g["lr"] = t.lr(self.epoch)
        self.model.train()
        perm = torch.randperm(len(d.y_train), generator=self.gen)
        for s in range(0, len(perm), t.cfg.batch_size):
            idx = perm[s:s + t.cfg.batch_size]
            self.ref.step(d.normalise(d.x_train[idx], t.dtype), t.y_noisy[idx], d.y_train[idx], lam)
        self.epoch += 1
        return evaluate(self.model, d, t.dtype)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out
