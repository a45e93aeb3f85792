"""Everything that needs a GPU, in one command, on the GPU machine as it is (python3 3.12, torch, no Ray, no
package index, nothing installed; the checkout on PYTHONPATH):

    PYTHONPATH=. python3 -m benchmarks.gpu_check                # on a CUDA machine: default budget 360 s of parts
    PYTHONPATH=. python3 -m benchmarks.gpu_check --with-ray .carry/ray-py312.tar.xz   # + the Ray parts (see below)
    python -m benchmarks.gpu_check --smoke                      # the same script on the CPU at toy sizes

Parts, in this order (by value: what no other machine can measure first), each in its own process with its own
time limit inside one overall budget (--budget, default 360 s): a failure, a crash of the CUDA context or a part
that runs out of time is printed and the next part runs.
  tests     the device tests, tests/test_gpu.py with DGL_TEST_DEVICE=cuda: the population on the GPU
            vs the notebook's step in float64, uint8 data resident and augmented on the device, no
            host sync per step, each fast-path switch against the float64 reference and the float32
            default path within the tolerances stated there (torch.compile's tests: part `compile`);
  bench     ResNet-18 on CIFAR-shaped data: the notebook's loop (reference), one dgl_ray trial, and
            packed populations of G = 4, 8, 16: trial-epochs per second (and per GPU-hour) and GPU
            memory per trial, each with its ratio to the reference measured in this run;
  switches  each fast-path switch (channels-last off, TF32, bf16, torch.compile) on a packed
            population of G = 8 full-width ResNet-18 trials: trial-epochs per second, GPU memory, and
            its deviation from the float32 default path (per-epoch training loss, final test error,
            and one update from the same weights vs the float32 path and vs the float64 reference);
  sweep     (needs Ray) a 2 λ x 4 seed synthetic-cifar sweep through Ray Tune with --gpus-per-trial 0.25
            (--group-size 2: four Tune trials of two members share the GPU);
  compile   tests/test_gpu.py's torch.compile tests (exact to 1e-9 in float64; a few compilations).

A part whose module is missing on this machine (Ray for `sweep`) is "not run: ray is not installed here", and a
part the budget leaves no time for is "not run: no time left in --budget": neither counts as failed. Ray cannot be
installed on the GPU machine and its wheel (79 MB) is more than what travels with the tree (64 MiB), but a stripped
install of Ray and the packages it needs there packs into about 21 MB: `python -m benchmarks.carry_ray` builds
`.carry/ray-py312.tar.xz` here; carry that path and pass it with --with-ray (unpacked into a temporary folder).

Exit code: 0 when every part that ran passed; 2 for bad arguments; otherwise the sum of the failed parts'
bits (tests 4, bench 8, sweep 16, switches 32, compile 64), also printed as words. Every figure is
printed; the figures and the parts' outcomes are also written as one markdown block for
benchmarks/RESULTS.md, to $OUT/gpu_check.md when $OUT is set (else ./gpu_check.md; --out overrides),
and printed again at the very end.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARTS = ("tests", "bench", "switches", "sweep", "compile")          # the order they run in: by value
NEEDS = {"sweep": ("ray",)}     # modules a part needs beyond torch; missing, the part is not run (not failed)
BITS = {"tests": 4, "bench": 8, "sweep": 16, "switches": 32, "compile": 64}
CAPS = {"tests": 120, "bench": 150, "switches": 120, "sweep": 150, "compile": 240}   # seconds, at most
DEFAULT_BUDGET = 360    # one start (1-2 min) + this leaves a rerun inside the GPU machine's 15 minutes
RESULT = "RESULT "          # a child's lines that go into the markdown block (and tests/test_gpu.py's FASTPATH lines)
FIGURE_PREFIXES = (RESULT, "FASTPATH ")
PYTEST_SUMMARY = re.compile(r"^=*\s*\d+ (passed|failed|error|errors|skipped|deselected)\b.* in [0-9.]+s")


def result(line: str) -> None:
    print(RESULT + line, flush=True)


# ---------------------------------------------------------------------------------------------------
# the parts (each runs in a child process: python -m benchmarks.gpu_check --child PART ...)
# ---------------------------------------------------------------------------------------------------
def _pytest(a, marker: str) -> None:
    """pytest in a process of its own, its output streamed (a part stopped at its time limit keeps
    what it printed; the FASTPATH lines of tests/test_gpu.py are figures)."""
    env = dict(os.environ, DGL_TEST_DEVICE=a.device, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pytest", "tests/test_gpu.py", "-m", marker, "-q", "-s", "-rs",
           "-p", "no:cacheprovider", "--durations=8"]
    print("  $ DGL_TEST_DEVICE=%s %s" % (a.device, " ".join(cmd[1:])), flush=True)
    rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if rc != 0:
        raise RuntimeError(f"device tests failed (pytest exit {rc})")


def part_tests(a) -> None:
    _pytest(a, "not slow")


def part_compile(a) -> None:
    _pytest(a, "slow")


def _sync(dev) -> None:
    import torch
    if dev.type == "cuda":
        torch.cuda.synchronize()


def _cfg(a, seed: int, epochs: int | None = None, **fast) -> dict:
    return dict(dataset="synthetic-cifar", model="resnet18", width=a.width, **{"lambda": 0.4}, seed=seed,
                epochs=epochs or a.epochs, synthetic_size=[a.train_size, a.test_size], device=a.device,
                batch_size=a.batch_size, **fast)


def _population(a, data, G: int, epochs: int | None = None, **fast) -> dict:
    """G packed trials (G = 1: one trial) for a.epochs epochs, one epoch at a time (fewer, but at least
    2, once the path has run --path-seconds): trial-epochs per second over the epochs after the first
    (warm-up: cudnn autotuning, allocation, compilation), the first epoch's time, GPU memory per trial,
    and each member's per-epoch training losses."""
    import torch
    from dgl_ray.batched import BatchedTrials
    dev = torch.device(a.device)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    epochs = epochs or a.epochs
    b = BatchedTrials([_cfg(a, s, epochs, **fast) for s in range(G)], data=data)
    times = []
    for _ in range(epochs):
        _sync(dev)
        t0 = time.perf_counter()
        b.run(max_epochs=1)
        _sync(dev)
        times.append(time.perf_counter() - t0)
        if len(times) >= 2 and sum(times) > a.path_seconds:     # slow path: one measured epoch is enough
            break
    steady = sorted(times[1:] or times)[len(times[1:] or times) // 2]
    out = {"rate": G / steady, "first": times[0], "epoch": steady, "measured": len(times) - 1,
           "mem": torch.cuda.max_memory_allocated() / 2**20 / G if dev.type == "cuda" else float("nan"),
           "loss": [[r["train_loss"] for r in t.history] for t in b.trials],
           "err": [t.history[-1]["test_error"] for t in b.trials], "status": [t.status for t in b.trials]}
    del b
    return out


def _free() -> None:
    import gc
    import torch
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def part_bench(a) -> None:
    import torch
    from benchmarks.trainer import reference_cifar
    from dgl_ray.data import make_synthetic_cifar
    t0 = time.perf_counter()
    data = make_synthetic_cifar(a.train_size, a.test_size)
    print(f"  synthetic-cifar {a.train_size}/{a.test_size} images ({time.perf_counter() - t0:.1f} s), resnet18 "
          f"width {a.width}, batch {a.batch_size}, {a.epochs} epochs per path (first = warm-up, excluded)", flush=True)
    import types
    ns = types.SimpleNamespace(model="resnet18", width=a.width, lam=0.4, epochs=a.epochs, train_size=a.train_size,
                               test_size=a.test_size, device=a.device, batch_size=a.batch_size, workers=a.workers)
    cuda = a.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    ref_times = reference_cifar(ns, data)
    ref_rate = 1 / sorted(ref_times[1:] or ref_times)[len(ref_times[1:] or ref_times) // 2]
    ref_mem = torch.cuda.max_memory_allocated() / 2**20 if cuda else float("nan")
    _free()
    print(f"  reference epochs: {', '.join(f'{t:.2f}' for t in ref_times)} s (DataLoader, {a.workers} workers, "
          f"cuDNN deterministic, torch's default math: cuDNN TF32 on)", flush=True)
    result(f"ResNet-18 width {a.width:g}, synthetic-cifar {a.train_size}/{a.test_size}, batch {a.batch_size}, "
           f"float32 (dgl_ray: TF32 off, channels-last), {a.epochs} epochs per path, first excluded")
    result(f"| path | trial-epochs/s | per GPU-hour | x reference | GPU MB per trial | x reference | first epoch s "
           f"| epochs measured |")
    result("|---|---|---|---|---|---|---|---|")

    def row(name, rate, mem, first, measured):
        mem_ratio = mem / ref_mem if cuda and ref_mem else float("nan")
        result(f"| {name} | {rate:.3f} | {rate * 3600:.0f} | {rate / ref_rate:.2f} | {mem:.0f} | {mem_ratio:.2f} | "
               f"{first:.1f} | {measured} |")
    row("reference (notebook loop)", ref_rate, ref_mem, ref_times[0], len(ref_times) - 1)
    failures = []
    best = (0.0, None)
    for G in [1] + a.groups:          # the largest last: a part stopped at its time limit keeps the rest
        try:
            r = _population(a, data, G)
            row(f"dgl_ray {'one trial' if G == 1 else f'packed G={G}'}", r["rate"], r["mem"], r["first"], r["measured"])
            best = max(best, (r["rate"] / ref_rate, G))
        except Exception as e:          # e.g. out of memory at large G: report, go on
            failures.append(f"G={G}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            result(f"FAILED {failures[-1]}")
        _free()
    if best[1] is not None:
        result(f"fastest: {'one trial' if best[1] == 1 else f'packed G={best[1]}'} at {best[0]:.2f}x the reference's "
               f"trial-epochs per GPU-hour (issue 9's target: >= 20x with trials packed)")
    if failures:
        raise RuntimeError("; ".join(failures))


def part_switches(a) -> None:
    """Each switch alone on top of the default path, on a packed population of a.switch_group."""
    import torch
    from dgl_ray.data import make_synthetic_cifar
    from tests import _fastpath as fp
    data = make_synthetic_cifar(a.train_size, a.test_size)
    G = a.switch_group
    cuda = a.device == "cuda"
    switches = [("channels_last", False), ("tf32", True), ("bf16", True), ("compile", True)]
    epochs = 2                      # warm-up (autotuning, compilation) + one measured epoch
    print(f"  population of G={G}, ResNet-18 width {a.width:g}, {epochs} epochs each (first: warm-up)", flush=True)
    base = _population(a, data, G, epochs)
    _free()
    result(f"fast-path switches, each alone on the default path: packed G={G}, ResNet-18 width {a.width:g}, "
           f"{a.train_size} images, batch {a.batch_size}, {epochs} epochs (first excluded from the speed); "
           f"deviations from the default (float32) path")
    result("| switch | trial-epochs/s | x default | GPU MB per trial | first epoch s | max abs Δ epoch train loss "
           "| mean Δ final test error | one update vs float32 (rel) | one update vs float64 ref (rel; float32 path's) |")
    result("|---|---|---|---|---|---|---|---|---|")

    def row(name, r, step):
        dl = max(abs(x - y) for p, q in zip(r["loss"], base["loss"]) for x, y in zip(p, q))
        de = sum(x - y for x, y in zip(r["err"], base["err"])) / len(r["err"])
        st = ("-", "-") if step is None else (f"{step[0]:.2e}", f"{step[1]:.2e} ({step[2]:.2e})")
        result(f"| {name} | {r['rate']:.3f} | {r['rate'] / base['rate']:.2f} | {r['mem']:.0f} | {r['first']:.1f} | "
               f"{dl:.2e} | {de:+.4f} | {st[0]} | {st[1]} |")
    row("default (float32, channels-last)", base, None)
    failures = []
    one_cfgs = [_cfg(a, s, 1) for s in range(2)]
    for name, value in switches:
        if name == "tf32" and not cuda:
            print("  tf32: skipped (CUDA only)", flush=True)
            continue
        if name == "compile" and not cuda and not a.compile_on_cpu:
            print("  compile: skipped on the CPU (minutes; --compile-on-cpu runs it)", flush=True)
            continue
        try:
            r = _population(a, data, G, epochs, **{name: value})
            _free()
            step = None
            if name != "compile":      # one update from the same weights (compile's: part `compile`, exact)
                s_on = fp.one_step(one_cfgs, data, **{name: value})
                s_off = fp.one_step(one_cfgs, data)
                vs32 = ((s_on["update"] - s_off["update"]).norm(dim=1) / s_off["update"].norm(dim=1)).max().item()
                step = (vs32, s_on["rel"], s_off["rel"])
                _free()
            row(f"{name}={value}", r, step)
        except Exception as e:
            failures.append(f"{name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            result(f"FAILED {failures[-1]}")
            traceback.print_exc(file=sys.stdout)
            _free()
    if failures:
        raise RuntimeError("; ".join(failures))


def part_sweep(a) -> None:
    with tempfile.TemporaryDirectory(prefix="dgl-gpu-check-") as storage:
        if a.smoke:   # the same command on the CPU at toy size: digits, no GPU share
            data_args = ["--dataset", "digits", "--device", "cpu", "--gpus-per-trial", "0"]
        else:
            data_args = ["--dataset", "synthetic-cifar", "--device", "cuda", "--gpus-per-trial", "0.25"]
        cmd = [sys.executable, "-m", "dgl_ray.sweeps.coexistence", *data_args, "--lambdas", "0.3,0.5", "--n", "4",
               "--epochs", str(a.sweep_epochs), "--group-size", "2", "--storage", storage, "--name", "gpu_check",
               "--progress-interval", "30"]
        print("  $ " + " ".join(cmd[1:]), flush=True)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, env=env)        # its output streamed: kept if the part is stopped
        wall = time.perf_counter() - t0
        result(f"sweep: python -m dgl_ray.sweeps.coexistence {' '.join(cmd[3:-6])} (2 λ x 4 seeds, "
               f"{a.sweep_epochs} epochs): exit {r.returncode}, {wall:.1f} s end to end")
        if r.returncode != 0:
            raise RuntimeError(f"sweep exited {r.returncode}")
        from dgl_ray.analysis import load_experiment
        df = load_experiment(os.path.join(storage, "gpu_check"))
        final = df[df["status"].isin(["completed", "diverged"])]
        runs = final["run"].nunique() if len(final) else 0
        by_lam = ", ".join(f"{lam:g}: {g['test_error'].mean():.3f}" for lam, g in final.groupby("lambda"))
        groups = df["group"].nunique() if "group" in df else 0
        result(f"sweep: {len(df)} result rows, {runs} of 8 trials ended in {groups} Tune trials; mean final test "
               f"error by λ: {by_lam or '-'}")
        if runs != 8:
            raise RuntimeError(f"{runs} of 8 trials ended")


FUNCS = {"tests": part_tests, "bench": part_bench, "sweep": part_sweep, "switches": part_switches,
         "compile": part_compile}


# ---------------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------------
NOT_RUN = "not run"


def _importable(module: str) -> bool:
    """Whether ``module`` imports here (a shim that raises ImportError counts as missing, as on the GPU machine)."""
    import importlib
    try:
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def _without(argv: list[str], option: str) -> list[str]:
    """``argv`` less ``option`` and its value, written as two words or as ``option=value``."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
        elif x == option:
            skip = True
        elif not x.startswith(option + "="):
            out.append(x)
    return out


def _unpack_carried(tar_path: str) -> str:
    """Unpack a carried site folder (benchmarks/carry_ray.py) into a temporary folder, put it first on this
    process's path and on PYTHONPATH (the parts' processes and Ray's workers inherit it); returns the folder."""
    import tarfile
    if not os.path.isfile(tar_path):
        raise ValueError("no such file (build it with `python -m benchmarks.carry_ray`, then carry it)")
    site = tempfile.mkdtemp(prefix="dgl-carried-site-")
    t0 = time.perf_counter()
    with tarfile.open(tar_path) as tar:
        tar.extractall(site, filter="data")
    sys.path.insert(0, site)
    os.environ["PYTHONPATH"] = site + os.pathsep + os.environ.get("PYTHONPATH", "")
    print(f"carried packages from {tar_path} unpacked into {site} in {time.perf_counter() - t0:.1f} s", flush=True)
    return site


def _run_child(name: str, argv: list[str], timeout: float) -> tuple[str, list[str]]:
    """Run one part in its own process (its own CUDA context) within ``timeout``; echo its output.
    Returns (outcome, its RESULT lines)."""
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", *argv, "--child", name]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile("w+") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
            outcome = "ok" if rc == 0 else f"FAILED (exit {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)       # the part and whatever it started (pytest, Ray)
            p.wait()
            outcome = f"TIMED OUT after {timeout:.0f} s"
        log.seek(0)
        lines = log.read().splitlines()
    results = []
    for line in lines:
        prefix = next((x for x in FIGURE_PREFIXES if line.startswith(x)), None)
        if prefix is not None:
            results.append(line[len(prefix):])
            print("  " + line[len(prefix):])
        else:
            if PYTEST_SUMMARY.match(line):
                results.append("pytest: " + line.strip("= "))   # pytest's summary line
            print(line)
    return outcome, results


def _environment() -> str:
    """What the parts depend on, for reading a failure: CUDA/cuDNN, Triton and a C compiler (torch.compile
    on a GPU), Ray."""
    import importlib.metadata as md
    import shutil
    import torch

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "missing"
    gpu = ""
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        gpu = f"{torch.cuda.get_device_name(0)} ({total / 2**30:.0f} GiB, {free / 2**30:.0f} free), "
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return (f"environment: {gpu}CUDA {torch.version.cuda}, cuDNN {cudnn}, triton {version('triton')}, "
            f"C compiler {shutil.which('cc') or shutil.which('gcc') or 'missing'}, "
            f"ray {version('ray') if _importable('ray') else 'not importable'}, "
            f"Python {sys.version.split()[0]}")


def _markdown(a, outcomes: dict, results: dict, total: float, env_line: str = "") -> str:
    from benchmarks.common import machine
    command = " ".join(["python -m benchmarks.gpu_check", *a.argv])
    out = [f"### {time.strftime('%Y-%m-%d %H:%M %Z')}: `{command}`",
           "", f"{machine()}", "", env_line, "", f"Parts: " + ", ".join(f"{k} **{v}**" for k, v in outcomes.items())
           + f"; {total:.0f} s in all.", ""]
    for name, lines in results.items():
        if not lines:
            continue
        out.append(f"**{name}**")
        out.append("")
        table = False
        for line in lines:
            if line.startswith("|") != table:
                out.append("")
                table = line.startswith("|")
            out.append(line if table else f"- {line}")
        out.append("")
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, toy sizes: check that the script runs")
    p.add_argument("--parts", default=None, help=f"comma list of: {', '.join(PARTS)} (default all; smoke: no compile)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                   help=f"seconds for all parts together (default {DEFAULT_BUDGET})")
    p.add_argument("--with-ray", default=None, metavar="TAR",
                   help="a Ray install packed by `python -m benchmarks.carry_ray` (.tar.xz), unpacked for this run")
    p.add_argument("--train-size", type=int, default=None, help="default 5120 = 20 batches of 256 (smoke 64)")
    p.add_argument("--test-size", type=int, default=None, help="default 1000 (smoke 32)")
    p.add_argument("--epochs", type=int, default=None, help="per path, the first is warm-up (default 3, smoke 2)")
    p.add_argument("--groups", default=None, help="packed population sizes (default 4,8,16; smoke 2)")
    p.add_argument("--switch-group", type=int, default=None, help="population size of the switches part (default 8, smoke 2)")
    p.add_argument("--width", type=float, default=None, help="ResNet-18 width (default 1, smoke 0.125)")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 (smoke 16)")
    p.add_argument("--workers", type=int, default=None, help="reference DataLoader workers (default 4, smoke 0)")
    p.add_argument("--sweep-epochs", type=int, default=None, help="default 1 (50,000 images each; smoke 2)")
    p.add_argument("--path-seconds", type=float, default=None,
                   help="a benchmark path stops after 2 epochs once it has run this long (default 45; smoke: no limit)")
    p.add_argument("--compile-on-cpu", action="store_true", help="smoke: measure torch.compile too (minutes)")
    p.add_argument("--out", default=None, help="markdown file (default $OUT/gpu_check.md, else ./gpu_check.md)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.argv = argv
    a.device = "cpu" if a.smoke else "cuda"
    a.train_size = a.train_size or (64 if a.smoke else 5120)
    a.test_size = a.test_size or (32 if a.smoke else 1000)
    a.epochs = a.epochs or (2 if a.smoke else 3)
    a.groups = [int(g) for g in (a.groups or ("2" if a.smoke else "4,8,16")).split(",")]
    a.switch_group = a.switch_group or (2 if a.smoke else 8)
    a.width = a.width or (0.125 if a.smoke else 1.0)
    a.batch_size = a.batch_size or (16 if a.smoke else 256)
    a.workers = a.workers if a.workers is not None else (0 if a.smoke else 4)
    a.sweep_epochs = a.sweep_epochs or (2 if a.smoke else 1)
    a.path_seconds = a.path_seconds or (1e9 if a.smoke else 45)
    parts = [x.strip() for x in (a.parts or ",".join(x for x in PARTS if not (a.smoke and x == "compile"))).split(",")
             if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        print(f"error: --parts: {bad[0]!r} is not one of {', '.join(PARTS)}", file=sys.stderr)
        return 2

    if a.with_ray and not a.child:
        try:
            _unpack_carried(a.with_ray)
        except (OSError, ValueError) as e:
            print(f"error: --with-ray {a.with_ray}: {e}", file=sys.stderr)
            return 2

    if a.child:                                   # one part, in this process
        from benchmarks.common import set_threads
        set_threads(1 if a.smoke else 4)
        try:
            FUNCS[a.child](a)
            return 0
        except Exception:
            traceback.print_exc(file=sys.stdout)
            return 1

    import torch
    from benchmarks.common import machine
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; command: python -m benchmarks.gpu_check {' '.join(argv)}")
    if not a.smoke and not torch.cuda.is_available():
        print("error: no CUDA GPU visible; run with --smoke to check the script on the CPU", file=sys.stderr)
        return 2
    env_line = _environment()
    print(env_line)
    out_path = a.out or os.path.join(os.environ.get("OUT") or ".", "gpu_check.md")
    child_argv = _without(_without(argv, "--parts"), "--with-ray")    # a child runs one part, Ray already on its path
    outcomes, results = {}, {}
    t_all = time.perf_counter()
    for name in parts:
        left = a.budget - (time.perf_counter() - t_all)
        missing = [m for m in NEEDS.get(name, ()) if not _importable(m)]
        if missing:
            outcomes[name] = f"{NOT_RUN}: {missing[0]} is not installed here"
        elif left < 30:
            outcomes[name] = f"{NOT_RUN}: no time left in --budget ({a.budget:.0f} s)"
        if name in outcomes:
            print(f"== {name}: {outcomes[name]}", flush=True)
            continue
        print(f"== {name} (at most {min(CAPS[name], left):.0f} s)", flush=True)
        t0 = time.perf_counter()
        outcomes[name], results[name] = _run_child(name, child_argv, min(CAPS[name], left))
        print(f"== {name}: {outcomes[name]} ({time.perf_counter() - t0:.0f} s)", flush=True)
    total = time.perf_counter() - t_all
    md = _markdown(a, outcomes, results, total, env_line)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w") as f:
            f.write(md)
        where = f"written to {out_path}"
    except OSError as e:
        where = f"could not write {out_path}: {e}"
    failed = [n for n, o in outcomes.items() if o != "ok" and not o.startswith(NOT_RUN)]
    not_run = [n for n, o in outcomes.items() if o.startswith(NOT_RUN)]
    code = sum(BITS[n] for n in failed)
    print(f"\n---- markdown for benchmarks/RESULTS.md ({where}) ----\n{md}---- end ----")
    ran = "all parts that ran ok" if not_run else "all parts ok"
    print(f"gpu_check: {ran if not failed else 'NOT OK: ' + ', '.join(f'{n} {outcomes[n]}' for n in failed)}"
          + (f"; not run: {', '.join(not_run)}" if not_run else "") + f" in {total:.0f} s; exit code {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
