"""Sweeps at scale: 10,000 (λ, seed) trials through the real runner, searcher and results path.

The trials do almost no training (the real trainer on digits, 1 epoch of 44 steps, 25 trials batched
into one Tune trial), so what is measured is what a sweep costs on top of training:

- driver overhead per trial: (sweep wall - ideal wall) / trials, where ideal wall = the Tune trials'
  own busy time (Tune's time_total_s: set-up, training, checkpoints, reports) spread over the
  concurrent workers; also wall / trials;
- peak RSS of the driver (this process) and of all Ray processes together (sampled every 0.5 s);
- files and bytes per trial in the sweep folder; time to build results.parquet and to load it;
- the time of ``--dry-run`` of a 100,000-trial plan, as a fresh command (imports included).

    python -m benchmarks.scale                  # 10,000 trials (100 λ x 100 seeds), grouped by 25
    python -m benchmarks.scale --trials 400     # a quick look

Targets (issue 8): <= 20 ms overhead per trial, driver RSS <= 2 GB, <= 5 files per trial, dry-run of
100,000 trials <= 5 s. Last line: ``overhead per trial: X ms``.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import psutil

from benchmarks.common import machine, peak_rss_mb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class RssSampler(threading.Thread):
    """Peak summed RSS of this process's descendants (the local Ray instance: GCS, raylet, workers)."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.peak, self.stop = every, 0, threading.Event()

    def run(self):
        me = psutil.Process()
        while not self.stop.is_set():
            total = 0
            for p in me.children(recursive=True):
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self.stop.wait(self.every)


def folder_size(path: str) -> tuple[int, int]:
    files = size = 0
    for root, _, names in os.walk(path):
        for n in names:
            files += 1
            try:
                size += os.path.getsize(os.path.join(root, n))
            except OSError:
                pass
    return files, size


def grid_args(trials: int) -> tuple[str, int]:
    """λ values and seeds whose product is ``trials`` (100 λ x 100 seeds for 10,000)."""
    n_lam = max(1, min(100, int(math.sqrt(trials))))
    while trials % n_lam:
        n_lam -= 1
    lams = ",".join(f"{i / (n_lam - 1) if n_lam > 1 else 0.3:.4f}" for i in range(n_lam))
    return lams, trials // n_lam


def time_dry_run(trials: int, group_size: int | None) -> tuple[float, float]:
    """(wall, CPU seconds) of the dry-run command; CPU time is the figure a busy machine distorts least."""
    lams, n = grid_args(trials)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", lams, "--n", str(n),
               "--epochs", "1", "--storage", tmp, "--dry-run"]
        if group_size:
            cmd += ["--group-size", str(group_size)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1"))
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"dry run failed: {r.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--group-size", type=int, default=25, help="(λ, seed) trials per Tune trial")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count())
    ap.add_argument("--dry-run-trials", type=int, default=100_000)
    ap.add_argument("--storage", default=None, help="default: a temporary folder (removed at the end)")
    ap.add_argument("--skip-dry-run", action="store_true")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} | {machine()} | load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    dry = {} if a.skip_dry_run else {g: time_dry_run(a.dry_run_trials, g) for g in (a.group_size, 1)}
    for g, (wall, cpu) in dry.items():
        print(f"dry-run of {a.dry_run_trials:,} trials (--group-size {g}): {wall:.1f} s wall, {cpu:.1f} s CPU "
              f"(target <= 5 s)", flush=True)

    import pandas as pd
    import ray
    from dgl_ray.analysis import load_experiment
    from dgl_ray.sweeps import coexistence
    from dgl_ray.tune import cli, runner

    lams, n = grid_args(a.trials)
    tmp = tempfile.TemporaryDirectory(prefix="dgl-scale-")
    storage = a.storage or tmp.name
    argv_sweep = ["--lambdas", lams, "--n", str(n), "--epochs", "1",
                  "--group-size", str(a.group_size), "--storage", storage, "--name", "scale",
                  "--num-cpus", str(a.num_cpus), "--progress-interval", "30"]
    sampler = RssSampler()
    sampler.start()
    t0 = time.perf_counter()
    runner.init_ray(None, a.num_cpus, 1)
    t_ray = time.perf_counter() - t0
    t1 = time.perf_counter()
    rc = coexistence.main(argv_sweep)
    sweep_wall = time.perf_counter() - t1
    ray.shutdown()
    sampler.stop.set()
    sampler.join()
    exp = os.path.join(storage, "scale")
    pq = os.path.join(exp, "results.parquet")
    t2 = time.perf_counter()
    df, _ = runner.collect(storage, "scale", None)
    t_build = time.perf_counter() - t2
    t3 = time.perf_counter()
    loaded = load_experiment(pq)
    t_load = time.perf_counter() - t3
    files, size = folder_size(exp)
    n_runs = loaded["run"].nunique()
    col = "time_total_s" if "time_total_s" in df else "wall_time"
    busy = df.groupby("tune_trial")[col].max().sum()
    workers = min(a.num_cpus, math.ceil(a.trials / a.group_size))
    ideal = busy / workers
    overhead_ms = 1000 * max(0.0, sweep_wall - ideal) / a.trials
    print(f"sweep exit code {rc}: {n_runs:,} trials finished of {a.trials:,} ({a.trials // a.group_size if a.group_size > 1 else a.trials} "
          f"Tune trials), {len(df):,} rows")
    print(f"Ray start {t_ray:.1f} s; sweep wall {sweep_wall:.1f} s ({1000 * sweep_wall / a.trials:.1f} ms per trial); "
          f"Tune trials busy ({col}) {busy:.1f} s over {workers} workers = ideal {ideal:.1f} s")
    print(f"peak RSS: driver {peak_rss_mb():.0f} MB (target <= 2048), all Ray processes {sampler.peak / 2**20:.0f} MB")
    print(f"storage: {files:,} files ({files / a.trials:.2f} per trial, target <= 5), {size / 2**20:.1f} MB "
          f"({size / a.trials / 1024:.1f} KB per trial)")
    print(f"results: build results.parquet {t_build:.1f} s, load it {t_load:.2f} s "
          f"({os.path.getsize(pq) / 2**20:.1f} MB)")
    tmp.cleanup()
    print(f"overhead per trial: {overhead_ms:.1f} ms")
    return 0 if rc == 0 and n_runs == a.trials else 1


if __name__ == "__main__":
    sys.exit(main())
