"""Everything that needs a GPU, in one command (at most ~10 minutes on one H100):

    python -m benchmarks.gpu_check            # on a CUDA machine
    python -m benchmarks.gpu_check --smoke    # the same script on the CPU at toy sizes (proves it runs)

Parts, each run whatever happened to the others (a failure is printed with its traceback and the
exit code is 1 if any part failed):
  1. tests   the device tests (tests/test_gpu.py with DGL_TEST_DEVICE=cuda): population on the GPU vs
             the notebook's step on the CPU in float64, uint8 data on the device, no host sync per
             step, TF32 / bf16 / channels-last / torch.compile within their stated tolerances;
  2. bench   ResNet-18 on CIFAR-shaped data: the notebook's loop (reference), one fast trial, and
             packed populations of G = 4, 8, 16: trial-epochs per second and per GPU-hour, GPU memory
             per trial, each with its ratio to the reference measured in this run;
  3. sweep   a 2 λ x 4 seed synthetic-cifar sweep through Ray Tune with --gpus-per-trial 0.25
             (--group-size 2: four Tune trials of two members share the GPU).
Every figure is printed; copy them, with the date and GPU printed at the top, into benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import traceback
import types

import torch

from benchmarks.common import machine, median, set_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def part_tests(a) -> None:
    env = dict(os.environ, DGL_TEST_DEVICE=a.device, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "tests/test_gpu.py", "-q", "-rs", "-p", "no:cacheprovider"]
    print("  $ DGL_TEST_DEVICE=%s %s" % (a.device, " ".join(cmd[1:])), flush=True)
    r = subprocess.run(cmd, cwd=ROOT, env=env, timeout=a.tests_timeout, text=True, capture_output=True)
    print("\n".join("    " + line for line in (r.stdout + r.stderr).strip().splitlines()[-25:]))
    if r.returncode != 0:
        raise RuntimeError(f"device tests failed (pytest exit {r.returncode})")


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _cfg(a, seed: int) -> dict:
    return dict(dataset="synthetic-cifar", model="resnet18", width=a.width, **{"lambda": 0.4}, seed=seed, epochs=a.epochs,
                synthetic_size=[a.train_size, a.test_size], device=a.device, batch_size=a.batch_size)


def _population_rate(a, data, G: int) -> tuple[float, float]:
    """(trial-epochs per second over the epochs after the first, GPU MB per trial) of G packed trials."""
    from dgl_ray.batched import BatchedTrials
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    b = BatchedTrials([_cfg(a, s) for s in range(G)], data=data)
    times = []
    for _ in range(a.epochs):
        _sync(dev)
        t0 = time.perf_counter()
        b.run(max_epochs=1)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    steady = times[1:] or times            # the first epoch holds cudnn autotuning and allocation
    mem = torch.cuda.max_memory_allocated() / 2**20 / G if dev.type == "cuda" else float("nan")
    del b
    return G / median(steady), mem


def part_bench(a) -> None:
    from benchmarks.trainer import reference_cifar
    from dgl_ray.data import make_synthetic_cifar
    t0 = time.perf_counter()
    data = make_synthetic_cifar(a.train_size, a.test_size)
    print(f"  synthetic-cifar {a.train_size}/{a.test_size} images ({time.perf_counter() - t0:.1f} s), resnet18 "
          f"width {a.width}, batch {a.batch_size}, {a.epochs} epochs per path (first epoch = warm-up, excluded)",
          flush=True)
    ns = types.SimpleNamespace(model="resnet18", width=a.width, lam=0.4, epochs=a.epochs, train_size=a.train_size,
                               test_size=a.test_size, device=a.device, batch_size=a.batch_size,
                               workers=a.workers)
    ref_times = reference_cifar(ns, data)
    ref_rate = 1 / median(ref_times[1:] or ref_times)
    rows = [("reference (notebook loop)", ref_rate, float("nan"))]
    print(f"  reference epochs: {', '.join(f'{t:.2f}' for t in ref_times)} s", flush=True)
    failures = []
    for G in [1] + a.groups:
        try:
            rate, mem = _population_rate(a, data, G)
            rows.append((f"dgl_ray {'one trial' if G == 1 else f'packed G={G}'}", rate, mem))
            print(f"  G={G}: {rate:.3f} trial-epochs/s, {mem:.0f} MB GPU per trial", flush=True)
        except Exception as e:          # e.g. out of memory at large G: report, go on
            failures.append(f"G={G}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            print(f"  G={G} FAILED: {failures[-1]}", flush=True)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print(f"  {'path':28s} {'trial-epochs/s':>15s} {'per GPU-hour':>13s} {'x reference':>12s} {'GPU MB/trial':>13s}")
    for name, rate, mem in rows:
        print(f"  {name:28s} {rate:15.3f} {rate * 3600:13.0f} {rate / ref_rate:12.2f} {mem:13.0f}")
    if failures:
        raise RuntimeError("; ".join(failures))


def part_sweep(a) -> None:
    with tempfile.TemporaryDirectory(prefix="dgl-gpu-check-") as storage:
        if a.smoke:   # the same command on the CPU at toy size: digits, no GPU share
            data_args = ["--dataset", "digits", "--device", "cpu", "--gpus-per-trial", "0"]
        else:
            data_args = ["--dataset", "synthetic-cifar", "--device", "cuda", "--gpus-per-trial", "0.25"]
        cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", *data_args, "--lambdas", "0.3,0.5", "--n", "4",
               "--epochs", "2", "--group-size", "2", "--storage", storage, "--name", "gpu_check",
               "--progress-interval", "30"]
        print("  $ " + " ".join(cmd[1:]), flush=True)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, env=env, timeout=a.sweep_timeout, text=True, capture_output=True)
        wall = time.perf_counter() - t0
        print("\n".join("    " + line for line in (r.stdout + r.stderr).strip().splitlines()[-20:]))
        print(f"  sweep wall time, end to end: {wall:.1f} s (exit {r.returncode})")
        if r.returncode != 0:
            raise RuntimeError(f"sweep exited {r.returncode}")
        from dgl_ray.analysis import load_experiment
        df = load_experiment(os.path.join(storage, "gpu_check"))
        final = df[df["status"].isin(["completed", "diverged"])]
        runs = final["run"].nunique() if len(final) else 0
        by_lam = ", ".join(f"{lam:g}: {g['test_error'].mean():.3f}" for lam, g in final.groupby("lambda"))
        print(f"  result rows {len(df)}, trials ended {runs} of 8; mean final test error by λ: {by_lam or '-'}")
        if runs != 8:
            raise RuntimeError(f"{runs} of 8 trials ended")


PARTS = {"tests": part_tests, "bench": part_bench, "sweep": part_sweep}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, toy sizes: check that the script runs")
    p.add_argument("--parts", default="tests,bench,sweep", help="comma list of: tests, bench, sweep")
    p.add_argument("--train-size", type=int, default=None, help="default 10000 (smoke 256)")
    p.add_argument("--test-size", type=int, default=None, help="default train-size / 5")
    p.add_argument("--epochs", type=int, default=None, help="per path, first is warm-up (default 3, smoke 2)")
    p.add_argument("--groups", default=None, help="packed population sizes (default 4,8,16; smoke 2)")
    p.add_argument("--width", type=float, default=None, help="ResNet-18 width (default 1, smoke 0.125)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default 4, smoke 0)")
    p.add_argument("--tests-timeout", type=int, default=240)
    p.add_argument("--sweep-timeout", type=int, default=240)
    a = p.parse_args(argv)
    a.device = "cpu" if a.smoke else "cuda"
    a.train_size = a.train_size or (256 if a.smoke else 10000)
    a.test_size = a.test_size or max(1, a.train_size // 5)
    a.epochs = a.epochs or (2 if a.smoke else 3)
    a.groups = [int(g) for g in (a.groups or ("2" if a.smoke else "4,8,16")).split(",")]
    a.width = a.width or (0.125 if a.smoke else 1.0)
    a.workers = a.workers if a.workers is not None else (0 if a.smoke else 4)
    set_threads(1 if a.smoke else 4)
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; command: python -m benchmarks.gpu_check {' '.join(sys.argv[1:])}")
    if not a.smoke and not torch.cuda.is_available():
        print("error: no CUDA GPU visible; run with --smoke to check the script on the CPU", file=sys.stderr)
        return 2
    failed = []
    t_all = time.perf_counter()
    for name in [x.strip() for x in a.parts.split(",") if x.strip()]:
        if name not in PARTS:
            print(f"error: --parts: {name!r} is not one of {', '.join(PARTS)}", file=sys.stderr)
            return 2
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        try:
            PARTS[name](a)
            print(f"== {name}: ok ({time.perf_counter() - t0:.0f} s)", flush=True)
        except Exception:
            failed.append(name)
            traceback.print_exc(file=sys.stdout)
            print(f"== {name}: FAILED ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"gpu_check: {'all parts ok' if not failed else 'FAILED: ' + ', '.join(failed)} "
          f"in {time.perf_counter() - t_all:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
