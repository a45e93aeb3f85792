"""Trainer throughput: the seed notebook's loop against dgl_ray, measured in the same run.

Digits default (CPU): trial-epochs per second for S seeds x E epochs, three paths interleaved over
--repeats rounds (medians reported):
  reference  the notebook's train_one_epoch (ReferenceDualGradient) in a plain per-trial loop
  trial      dgl_ray.Trial, one trial at a time (a population of one)
  batched    dgl_ray.batched.BatchedTrials, all S seeds as one population
    python -m benchmarks.trainer                       # 16 seeds x 3 epochs, 1 thread

ResNet-18 on CIFAR-shaped data (GPU; --device cpu runs the same code at any size):
  reference  the notebook's loop: DataLoader with CPU augmentation (per-sample crop+flip+normalise)
             in worker processes, pinned memory, fp32, cudnn deterministic, ReferenceDualGradient
  trial      dgl_ray, one trial (a population of one): data resident on the device, augmentation on
             the device, channels-last (--no-channels-last to turn off), optional --tf32 / --bf16 / --compile
  packed     --pack G trials as ONE population (dgl_ray.batched): trial-epochs per second and
             torch.cuda.max_memory_allocated per trial
    python -m benchmarks.trainer --dataset synthetic-cifar --model resnet18 --device cuda
    python -m benchmarks.trainer --dataset synthetic-cifar --model resnet18 --device cpu --epochs 1 --train-size 512

The last line is always ``speedup: X.XX`` = the fastest faithful dgl_ray path / the reference.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from benchmarks.common import ReferenceRun, machine, median, peak_rss_mb, set_threads


# ---------------------------------------------------------------------------------------------------
# digits: reference vs Trial vs BatchedTrials
# ---------------------------------------------------------------------------------------------------
def bench_digits(a) -> float:
    from dgl_ray.batched import BatchedTrials, run_trial
    from dgl_ray.data import load_digits_data
    from dgl_ray.trainer import Trial

    data = load_digits_data()
    cfgs = [dict(dataset="digits", **{"lambda": a.lam}, seed=s, epochs=a.epochs, width=a.width) for s in range(a.seeds)]
    n = len(cfgs) * a.epochs

    def reference(cfgs=cfgs):
        runs = [ReferenceRun(c, data) for c in cfgs]
        t0, c0 = time.perf_counter(), time.process_time()
        errs = [[r.train_epoch() for _ in range(c['epochs'])][-1] for r, c in zip(runs, cfgs)]
        return time.perf_counter() - t0, time.process_time() - c0, errs

    def trial(cfgs=cfgs):
        trials = [Trial(c, data=data) for c in cfgs]
        t0, c0 = time.perf_counter(), time.process_time()
        errs = [run_trial(t)["final_error"] for t in trials]
        return time.perf_counter() - t0, time.process_time() - c0, errs

    def batched(cfgs=cfgs):
        b = BatchedTrials(cfgs, data=data)
        t0, c0 = time.perf_counter(), time.process_time()
        errs = [s["final_error"] for s in b.run()]
        return time.perf_counter() - t0, time.process_time() - c0, errs

    paths = {"reference": reference, "trial": trial, "batched": batched}
    times = {k: [] for k in paths}
    cpus = {k: [] for k in paths}
    errs = {}
    print(f"digits, tinycnn width {a.width}: {a.seeds} seeds x {a.epochs} epochs = {n} trial-epochs per path, "
          f"{a.repeats} rounds, interleaved", flush=True)
    for f in paths.values():          # warm-up (first-call allocations, kernel selection), not timed
        f([dict(cfgs[0], epochs=1)])
    for r in range(a.repeats):
        order = list(paths)[r % 3:] + list(paths)[:r % 3]      # rotate so no path always runs first
        for k in order:
            dt, dc, errs[k] = paths[k]()
            times[k].append(dt)
            cpus[k].append(dc)
            print(f"  round {r + 1} {k:9s} {dt:7.2f} s wall {dc:7.2f} s CPU  {n / dt:7.1f} trial-epochs/s", flush=True)
    rate = {k: n / median(v) for k, v in times.items()}
    crate = {k: n / median(v) for k, v in cpus.items()}
    print(f"{'path':10s} {'median s':>9s} {'trial-epochs/s':>15s} {'x reference':>12s}   "
          f"{'CPU s':>7s} {'per CPU-s':>9s} {'x ref':>6s}")
    for k in paths:
        print(f"{k:10s} {median(times[k]):9.2f} {rate[k]:15.1f} {rate[k] / rate['reference']:12.2f}   "
              f"{median(cpus[k]):7.2f} {crate[k]:9.1f} {crate[k] / crate['reference']:6.2f}")
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
          f"(wall-clock ratio is the speedup line; CPU-time ratio is the same work without other jobs' noise)")
    dev = max(abs(x - y) for x, y in zip(errs["trial"], errs["batched"]))
    print(f"final errors: reference {fmt(errs['reference'])}\n              trial     {fmt(errs['trial'])}\n"
          f"              batched   {fmt(errs['batched'])}  (max |batched - trial| = {dev:.4f}, float32)")
    print(f"peak host RSS of this process: {peak_rss_mb():.0f} MB ({a.seeds} trials held at once)")
    best = max(("trial", "batched"), key=lambda k: rate[k])
    print(f"fastest faithful dgl_ray path: {best}")
    return rate[best] / rate["reference"]


def fmt(xs) -> str:
    return " ".join(f"{x:.3f}" for x in xs[:8]) + (" ..." if len(xs) > 8 else "")


# ---------------------------------------------------------------------------------------------------
# ResNet on CIFAR-shaped data
# ---------------------------------------------------------------------------------------------------
class _AugmentedCPU(torch.utils.data.Dataset):
    """The notebook's torchvision pipeline, per sample on the CPU: RandomCrop(32, 4), flip, normalise."""

    def __init__(self, x, mean, std, scale, train: bool):
        self.x, self.train, self.scale = x, train, scale
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        img = self.x[i].float() / self.scale
        if self.train:
            img = torch.nn.functional.pad(img, (4, 4, 4, 4))
            dy, dx = torch.randint(0, 9, (2,)).tolist()
            img = img[:, dy:dy + 32, dx:dx + 32]
            if torch.rand(()) < 0.5:
                img = img.flip(2)
        return (img - self.mean) / self.std, i


def _cifar_cfg(a, fast: bool = True) -> dict:
    """The benchmark's trial config; with ``fast`` the fast-path switches of the command line (trial
    config fields, so each trial's rows and checkpoints record them)."""
    c = dict(dataset="synthetic-cifar", model=a.model, width=a.width, **{"lambda": a.lam}, seed=0, epochs=a.epochs,
             synthetic_size=[a.train_size, a.test_size], device=a.device, batch_size=a.batch_size)
    if fast:
        c.update(channels_last=a.channels_last, bf16=a.bf16, tf32=a.tf32, compile=a.compile)
    return c


def reference_cifar(a, data) -> list[float]:
    """Epoch times of the notebook's loop on the device, with PyTorch's default math as the notebook
    ran it (cuDNN convolutions may use TF32, matmuls not; dgl_ray's default path has TF32 off)."""
    from dgl_ray.step import ReferenceDualGradient
    from dgl_ray.trainer import Trial

    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False   # torch's defaults
    t = Trial(_cifar_cfg(a, fast=False), data=data)
    dev = t.device
    cpu = t.data if dev.type == "cpu" else data
    model, noisy, clean = t.model, t.y_noisy, t.data.y_train
    opt = torch.optim.SGD(model.parameters(), lr=t.cfg.lr, momentum=0.9, weight_decay=5e-4)
    ref = ReferenceDualGradient(model, opt, t.cfg.K)
    kw = dict(num_workers=a.workers, pin_memory=dev.type == "cuda", persistent_workers=a.workers > 0)
    train = torch.utils.data.DataLoader(_AugmentedCPU(cpu.x_train, cpu.mean, cpu.std, cpu.scale, True),
                                        a.batch_size, shuffle=True, **kw)
    test = torch.utils.data.DataLoader(_AugmentedCPU(cpu.x_test, cpu.mean, cpu.std, cpu.scale, False),
                                       a.batch_size, shuffle=False, **kw)
    times = []
    for _ in range(a.epochs):
        sync(dev)
        t0 = time.perf_counter()
        model.train()
        for x, idx in train:
            x, idx = x.to(dev), idx.to(dev)
            ref.step(x, noisy[idx], clean[idx], t.plans[0].lam)
        model.eval()
        wrong = 0
        with torch.no_grad():
            for x, idx in test:
                wrong += (model(x.to(dev)).argmax(1).cpu() != cpu.y_test[idx]).sum().item()
        model.train()
        sync(dev)
        times.append(time.perf_counter() - t0)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, False
    return times


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()


def population_cifar(a, data, G: int) -> tuple[list[float], float]:
    """Epoch times of G trials packed as one population (G=1: one trial) and GPU memory per trial."""
    from dgl_ray.batched import BatchedTrials

    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    b = BatchedTrials([dict(_cifar_cfg(a), seed=s) for s in range(G)], data=data)
    times = []
    b.run(on_eval=lambda m, i: times.append(m["epoch_time"]) if i == 0 else None)
    mem = torch.cuda.max_memory_allocated() / 2**20 / G if a.device.startswith("cuda") else float("nan")
    return times, mem


def bench_cifar(a) -> float:
    from dgl_ray.data import make_synthetic_cifar

    t0 = time.perf_counter()
    data = make_synthetic_cifar(a.train_size, a.test_size)
    print(f"synthetic-cifar {a.train_size}/{a.test_size} images ({time.perf_counter() - t0:.1f} s to make), "
          f"{a.model} width {a.width}, batch {a.batch_size}, device {a.device}, {a.epochs} epochs per path; "
          f"flags: channels_last={a.channels_last} tf32={a.tf32} bf16={a.bf16} compile={a.compile}", flush=True)
    ref, fast = [], []
    mem = float("nan")
    for r in range(a.repeats):
        if r % 2 == 0:
            ref += reference_cifar(a, data)
            f, mem = population_cifar(a, data, 1)
            fast += f
        else:
            f, mem = population_cifar(a, data, 1)
            fast += f
            ref += reference_cifar(a, data)
        print(f"  round {r + 1}: reference epochs {fmt(ref)} s; dgl_ray epochs {fmt(fast)} s", flush=True)
    # the first epoch of each run holds warm-up (cudnn autotune, compile): medians over all epochs
    r_ep, f_ep = median(ref), median(fast)
    print(f"{'path':22s} {'epoch s':>8s} {'trial-epochs/s':>15s} {'x reference':>12s}")
    print(f"{'reference (notebook)':22s} {r_ep:8.2f} {1 / r_ep:15.3f} {1.0:12.2f}")
    print(f"{'dgl_ray Trial':22s} {f_ep:8.2f} {1 / f_ep:15.3f} {r_ep / f_ep:12.2f}")
    print(f"GPU memory, one trial: {mem:.0f} MB (torch.cuda.max_memory_allocated)")
    best = r_ep / f_ep
    if a.pack > 1:
        times, pmem = population_cifar(a, data, a.pack)
        p_ep = median(times[1:] or times)          # first epoch: warm-up
        rate = a.pack / p_ep
        print(f"{'dgl_ray packed G=' + str(a.pack):22s} {p_ep / a.pack:8.2f} {rate:15.3f} {rate * r_ep:12.2f}"
              f"   (one population of {a.pack} trials; epoch {p_ep:.2f} s)")
        print(f"GPU memory per packed trial: {pmem:.0f} MB")
        best = max(best, rate * r_ep)
    print(f"peak host RSS of this process: {peak_rss_mb():.0f} MB")
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.trainer", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", choices=["digits", "synthetic-cifar"])
    p.add_argument("--model", default=None, help="tinycnn (digits) or resnet18/resnet34 (synthetic-cifar)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--lam", type=float, default=0.4)
    p.add_argument("--seeds", type=int, default=16, help="digits: trials per path")
    p.add_argument("--epochs", type=int, default=None, help="default: 3 (digits), 3 (cifar)")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved rounds, medians reported (default 5 for digits: a batched round is under 0.5 s, "
                        "and other jobs' bursts on a shared machine move a median of 3; 1 for cifar on cpu, 3 on cuda)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 on CPU digits, 4 for cuda)")
    p.add_argument("--train-size", type=int, default=50000)
    p.add_argument("--test-size", type=int, default=None, help="default: train-size / 5")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default 2 on cuda, 0 on cpu)")
    p.add_argument("--pack", type=int, default=None, help="trials packed as one population (default 8 on cuda, 4 on cpu)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--tf32", action="store_true")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", action="store_true")
    a = p.parse_args(argv)
    cuda = a.device.startswith("cuda")
    a.threads = a.threads or (4 if cuda else 1)
    set_threads(a.threads)
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; command: python -m benchmarks.trainer {' '.join(sys.argv[1:])}")
    if a.dataset == "digits":
        a.epochs = a.epochs or 3
        a.repeats = a.repeats or 5
        ratio = bench_digits(a)
    else:
        a.model = a.model or "resnet18"
        a.epochs = a.epochs or 3
        a.test_size = a.test_size or max(1, a.train_size // 5)
        a.workers = 2 if a.workers is None and cuda else (a.workers or 0)
        a.pack = a.pack or (8 if cuda else 4)
        a.repeats = a.repeats or (3 if cuda else 1)
        ratio = bench_cifar(a)
    print(f"speedup: {ratio:.2f}")


if __name__ == "__main__":
    main()
