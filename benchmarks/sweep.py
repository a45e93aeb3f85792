"""The digits S1 sweep end to end: 8 λ (0.42…0.56) × 50 seeds × 30 epochs = 400 trials.

dgl_ray: the 400 (λ, seed) trials cut into groups of --group-size, each group one BatchedTrials
(one grouped model, every trial still its own row: own noisy labels, data order and result), the
groups run as Ray Tune trials (one Tune trial per group, 1 CPU and --threads torch threads each,
--procs at once) by the real sweep command, ``python -m dgl_ray.sweeps.coexistence`` (Ray start,
Tune, checkpoints, the Parquet, the table), run as a subprocess; ``--no-tune`` runs the same groups
in --procs forked worker processes without Ray instead.

reference: the seed notebook's loop, one trial at a time in one process. 400 x 30 epochs of it take
hours, so it is ESTIMATED from a measured subset (--ref-trials trials x --ref-epochs epochs, timed
in this run): wall = 400 x (setup per trial + 30 x time per trial-epoch).

    python -m benchmarks.sweep                      # the full S1 sweep (about 3-5 minutes on 2 cores)
    python -m benchmarks.sweep --seeds 4 --epochs 2 # a quick look

Prints wall time, per-trial overhead, trial-epochs/s, peak host RSS (every process), the L/H counts
per λ, and as its last line ``speedup: X.XX`` = estimated reference wall / measured dgl_ray wall.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

from benchmarks.common import ReferenceRun, machine, median, peak_rss_mb, set_threads

LAMBDAS = [0.42, 0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56]


def configs(a) -> list[dict]:
    return [dict(dataset="digits", **{"lambda": lam}, seed=s, epochs=a.epochs, eta=0.4)
            for lam in LAMBDAS for s in range(a.seeds)]


def groups(a) -> list[list[int]]:
    n = len(LAMBDAS) * a.seeds
    return [list(range(i, min(i + a.group_size, n))) for i in range(0, n, a.group_size)]


_DATA = None


def run_groups(cfgs, gids, grps) -> dict:
    """Run some groups in this process; return the rows and the timings."""
    from dgl_ray.batched import BatchedTrials
    from dgl_ray.data import load_digits_data

    t0 = time.perf_counter()
    data = _DATA if _DATA is not None else load_digits_data()
    rows, setup, train = [], 0.0, 0.0
    for g in gids:
        t1 = time.perf_counter()
        b = BatchedTrials([cfgs[i] for i in grps[g]], data=data)
        t2 = time.perf_counter()
        for i, s in zip(grps[g], b.run()):
            rows.append({"i": i, "lambda": s["lambda"], "seed": s["seed"], "final_error": s["final_error"],
                         "status": s["status"]})
        setup += t2 - t1
        train += time.perf_counter() - t2
        del b
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"rows": rows, "setup_s": setup, "train_s": train, "wall_s": time.perf_counter() - t0,
            "rss_mb": peak_rss_mb(), "cpu_s": ru.ru_utime + ru.ru_stime}


def _child(args):
    a, gids = args
    set_threads(a.threads)
    return run_groups(configs(a), gids, groups(a))


def run_processes(a) -> tuple[list[dict], list[dict]]:
    """Worker processes forked from this one (torch and dgl_ray already imported: no second import)."""
    import multiprocessing as mp

    import dgl_ray.batched  # noqa: F401  (imported before the fork)
    from dgl_ray.data import load_digits_data

    global _DATA
    _DATA = load_digits_data()                 # read once, shared by the forked workers
    grps = groups(a)
    share = [list(range(p, len(grps), a.procs)) for p in range(a.procs)]
    with mp.get_context("fork").Pool(a.procs) as pool:
        outs = pool.map(_child, [(a, s) for s in share if s], chunksize=1)
    return [r for o in outs for r in o["rows"]], outs


def run_tune(a) -> tuple[list[dict], list[dict]]:
    """The product, end to end: ``python -m dgl_ray.sweeps.coexistence`` as a user runs it (Ray start,
    Tune trials of --group-size batched trials, checkpoints, the Parquet, the table), in a subprocess
    whose whole process tree (driver, raylet, Tune workers) is sampled for memory."""
    import subprocess
    import tempfile
    import pandas as pd
    import psutil

    storage = tempfile.mkdtemp(prefix="dgl_ray_bench_")
    cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", "--lambdas", "0.42:0.56:0.02", "--n", str(a.seeds),
           "--epochs", str(a.epochs), "--group-size", str(a.group_size), "--max-concurrent", str(a.procs),
           "--num-cpus", str(a.procs), "--storage", storage, "--name", "s1", "--progress-interval", "30"]
    print("running: " + " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd, env=dict(os.environ, OMP_NUM_THREADS=str(a.threads)))
    root, peak = psutil.Process(proc.pid), 0.0
    cpu: dict = {}          # pid -> (kind, user+sys CPU seconds last seen): the load-independent cost
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
            rss_by: dict = {}
            for p in tree:
                try:
                    k = cpu[p.pid][0] if p.pid in cpu else _kind(p, root)
                    rss_by[k] = rss_by.get(k, 0.0) + p.memory_info().rss / 2**20
                except psutil.Error:
                    pass
            if sum(rss_by.values()) > peak:
                peak, a.rss_by_kind = sum(rss_by.values()), rss_by
            for p in tree:
                try:
                    t = p.cpu_times()
                    # the kind first seen (an exiting process reads with an empty command line)
                    kind = cpu[p.pid][0] if p.pid in cpu else _kind(p, root)
                    cpu[p.pid] = (kind, t.user + t.system)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        time.sleep(0.5)
    a.cpu_by_kind = {}
    for kind, s in cpu.values():
        a.cpu_by_kind[kind] = a.cpu_by_kind.get(kind, 0.0) + s
    if proc.returncode != 0:
        raise SystemExit(f"the sweep failed with exit code {proc.returncode}")
    df = pd.read_parquet(os.path.join(storage, "s1", "results.parquet"))
    last = df.sort_values("epoch").groupby("run").tail(1)
    lam_index = {l: k for k, l in enumerate(LAMBDAS)}
    rows = [{"i": lam_index[round(r["lambda"], 2)] * a.seeds + int(r["seed"]), "lambda": r["lambda"],
             "seed": int(r["seed"]), "final_error": None if pd.isna(r["test_error"]) else r["test_error"],
             "status": r["status"]} for _, r in last.iterrows()]
    # a Tune trial's wall_time metric is its (group's) training time; the rest of the wall is Tune's
    train = last.groupby("tune_trial")["wall_time"].max() if "tune_trial" in last else last["wall_time"]
    outs = [{"setup_s": 0.0, "train_s": float(t), "rss_mb": 0.0, "cpu_s": float("nan")} for t in train]
    outs[0]["rss_mb"] = peak   # whole tree (driver + Ray + workers) sampled every 0.5 s
    a.n_tune_trials = len(train)
    return rows, outs


def _kind(p, root) -> str:
    """Which part of the sweep a process is: the driver, a Ray worker (Tune's trainable actors; Ray
    starts them as ``default_worker.py`` and names them ``ray::IDLE``, ``ray::ImplicitFunc``) or one of
    Ray's own services (GCS, raylet, dashboard, agents, log monitor)."""
    import psutil
    if p.pid == root.pid:
        return "driver"
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return "Ray services"
    worker = cmd.startswith(("ray::ImplicitFunc", "ray::IDLE")) or "workers/default_worker.py" in cmd
    return "Ray workers" if worker else "Ray services"


def measure_reference(a, part: int, parts: int = 2) -> list[tuple[float, float, float]]:
    """(setup s, wall s per trial-epoch, CPU s per trial-epoch) of the notebook loop for every
    ``parts``-th of --ref-trials trials (half before the dgl_ray run, half after: the load of a
    shared machine changes over minutes)."""
    from dgl_ray.data import load_digits_data

    data = load_digits_data()
    cfgs = configs(a)
    pick = [cfgs[(k * len(cfgs)) // a.ref_trials] for k in range(part, a.ref_trials, parts)]   # spread over λ
    out = []
    for c in pick:
        t0 = time.perf_counter()
        r = ReferenceRun(c, data)
        t1, c1 = time.perf_counter(), time.process_time()
        for _ in range(a.ref_epochs):
            r.train_epoch()
        out.append((t1 - t0, (time.perf_counter() - t1) / a.ref_epochs, (time.process_time() - c1) / a.ref_epochs))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--group-size", type=int, default=25, help="trials per BatchedTrials group")
    p.add_argument("--procs", type=int, default=2, help="worker processes (or concurrent Tune trials)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    p.add_argument("--no-tune", dest="tune", action="store_false",
                   help="run the groups in forked worker processes without Ray (default: through Ray Tune, "
                        "as python -m dgl_ray.sweeps.coexistence runs them)")
    p.add_argument("--ref-trials", type=int, default=4)
    p.add_argument("--ref-epochs", type=int, default=2)
    a = p.parse_args(argv)
    set_threads(a.threads)
    n = len(LAMBDAS) * a.seeds
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M')}; command: python -m benchmarks.sweep {' '.join(sys.argv[1:])}")
    print(f"digits S1: {len(LAMBDAS)} λ x {a.seeds} seeds = {n} trials x {a.epochs} epochs; groups of {a.group_size}, "
          f"{a.procs} {'Tune trials' if a.tune else 'processes'} x {a.threads} thread(s)", flush=True)
    ref = measure_reference(a, 0)
    t0 = time.perf_counter()
    rows, outs = run_tune(a) if a.tune else run_processes(a)
    wall = time.perf_counter() - t0
    assert sorted(r["i"] for r in rows) == list(range(n)), "every (λ, seed) must come back as its own row"
    setup = sum(o["setup_s"] for o in outs)
    train = sum(o["train_s"] for o in outs)
    busy = setup + train
    print(f"dgl_ray wall {wall:.1f} s for {n} trials ({n * a.epochs / wall:.1f} trial-epochs/s); "
          f"worker busy time {busy:.1f} s (setup {setup:.1f} s = {1000 * setup / n:.0f} ms per trial, "
          f"training {train:.1f} s)")
    print(f"overhead outside training (process start, imports, data, {'Ray Tune, ' if a.tune else ''}trial setup): "
          f"{wall - train / a.procs:.1f} s = {1000 * (wall - train / a.procs) / n:.0f} ms per trial"
          + (f" = {(wall - train / a.procs) / a.n_tune_trials:.2f} s per Tune trial ({a.n_tune_trials} Tune trials)"
             if a.tune else ""))
    cpu = [o.get("cpu_s", float("nan")) for o in outs]
    if not a.tune:
        print(f"CPU time (user+sys) per worker: {', '.join(f'{c:.1f}' for c in cpu)} s; load average "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared with other jobs: wall > CPU time "
              f"when the machine is busy)")
    rss = [o["rss_mb"] for o in outs]
    if a.tune:
        by = a.cpu_by_kind
        print(f"CPU time (user+sys, sampled every 0.5 s): {sum(by.values()):.1f} s = "
              + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(by.items()))
              + f"; load average {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores shared with other jobs: "
              f"wall > CPU time / {a.procs} when the machine is busy)")
    if a.tune:
        parts = getattr(a, "rss_by_kind", {})
        print(f"peak host RSS of the whole sweep (driver, Ray, Tune workers): {rss[0]:.0f} MB"
              + (" = " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(parts.items())) if parts else "")
              + " (resident pages of every process summed: shared libraries count once per process)")
    else:
        print(f"peak host RSS: workers {', '.join(f'{r:.0f}' for r in rss)} MB, driver {peak_rss_mb():.0f} MB, "
              f"total {sum(rss) + peak_rss_mb():.0f} MB ({max(rss) * a.procs / n:.1f} MB per trial incl. imports)")
    print(f"{'λ':>5s} {'L (≤0.20)':>9s} {'H (≥0.40)':>9s} {'mean err':>9s} {'diverged':>9s}")
    for lam in LAMBDAS:
        e = [r["final_error"] for r in rows if abs(r["lambda"] - lam) < 1e-9 and r["final_error"] is not None]
        dv = sum(1 for r in rows if abs(r["lambda"] - lam) < 1e-9 and r["status"] == "diverged")
        print(f"{lam:5.2f} {sum(x <= 0.2 for x in e):9d} {sum(x >= 0.4 for x in e):9d} "
              f"{sum(e) / max(len(e), 1):9.3f} {dv:9d}")
    ref += measure_reference(a, 1)
    ref_setup, ref_epoch, ref_cpu = (median([r[k] for r in ref]) for k in range(3))
    ref_wall = n * (ref_setup + a.epochs * ref_epoch)
    print(f"reference (ESTIMATED from {len(ref)} trials x {a.ref_epochs} epochs measured in this run, half before and "
          f"half after the dgl_ray run; one trial at a time in one process): {ref_epoch:.3f} s wall "
          f"({ref_cpu:.3f} s CPU) per trial-epoch, {ref_setup:.3f} s setup per trial -> {ref_wall:.0f} s for the sweep "
          f"({ref_wall / 3600:.2f} h)")
    cpu_total = sum(cpu)
    if not a.tune:
        print(f"CPU time for the sweep: reference (est.) {n * a.epochs * ref_cpu:.0f} s, dgl_ray {cpu_total:.0f} s "
              f"({n * a.epochs * ref_cpu / cpu_total:.2f}x less); on {a.procs} idle cores dgl_ray would take about "
              f"{max(cpu) + wall - train / a.procs:.0f} s wall")
    print(f"speedup: {ref_wall / wall:.2f}")


if __name__ == "__main__":
    main()
