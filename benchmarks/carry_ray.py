"""Pack Ray for the GPU machine, which has no Ray and reaches no package index (the one step before
`python -m benchmarks.gpu_check --with-ray`):

    python -m benchmarks.carry_ray                     # writes .carry/ray-py312.tar.xz (about 21 MB)

What travels with a command to the GPU machine is the working tree plus carried paths, 64 MiB in all;
Ray's wheel alone is 79 MB (ray 2.60, cp312) and 201 MB unpacked. This downloads the wheels of
`ray[tune]` and diptest for that machine's Python (3.12, manylinux x86_64) with pip, leaves out the
packages that machine already has (numpy, pandas, pyarrow and their own dependencies), and of Ray the
parts a Tune sweep never imports (the Java jars, the dashboard's web client, RLlib, Serve, Ray LLM),
strips the debug symbols of its binaries (`strip --strip-unneeded`), and packs the rest as one
.tar.xz. It prints the size after each step and checks the total against the 64 MiB with the tree.
Measured 2026-12-06 (ray 2.60.0): 225 MB of wheels unpacked, 172 MB after leaving parts out, 126 MB
stripped, 21.7 MB packed; the tree is about 2 MB.

`--check PYTHON` unpacks the archive and runs a two-trial Tune experiment with that interpreter and
the archive first on its path (a Python of the target version with numpy, pandas and pyarrow; here:
`python3.12 -m venv v && v/bin/pip install numpy pandas pyarrow`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARRY_LIMIT = 64 * 2**20            # the GPU machine's limit on the tree plus carried paths
# on the GPU machine already (its page in the device tool's README): never carried, never shadowed
ON_DEVICE = {"numpy", "pandas", "pyarrow", "python_dateutil", "tzdata", "six", "pytz", "torch", "scipy",
             "scikit_learn", "matplotlib", "pytest"}
# parts of Ray a Tune sweep does not import (checked by --check and by the GPU machine's sweep part)
RAY_UNUSED = ("ray/jars", "ray/dashboard/client/build", "ray/rllib", "ray/serve", "ray/llm")
CHECK = """
import tempfile, time
t0 = time.time()
import ray
from ray import tune
def f(config):
    for i in range(3):
        tune.report({"score": config["x"] * i})
ray.init(num_cpus=2, include_dashboard=False)
grid = tune.Tuner(f, param_space={"x": tune.grid_search([1, 2])},
                  run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0)).fit()
best = grid.get_best_result("score", "max").metrics["score"]
print(f"carried Ray {ray.__version__}: 2 Tune trials, best score {best}, {time.time() - t0:.1f} s")
ray.shutdown()
assert best == 4
"""


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def _size(path: str) -> int:
    total = 0
    for d, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files if not os.path.islink(os.path.join(d, f)))
    return total


def _project(wheel: str) -> str:
    return os.path.basename(wheel).split("-")[0].lower().replace("-", "_")


def _is_elf(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def tree_bytes() -> int:
    """The size of the tracked tree, what travels with every command."""
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return sum(os.path.getsize(os.path.join(ROOT, f)) for f in out.decode().split("\0")
               if f and os.path.isfile(os.path.join(ROOT, f)))


def download(ray_version: str, python: str, dest: str) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "download", "-q", f"ray[tune]=={ray_version}", "diptest",
           "--python-version", python, "--only-binary=:all:", "--dest", dest,
           "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
           "--platform", "manylinux_2_24_x86_64", "--platform", "manylinux_2_28_x86_64"]
    print("$ " + " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)
    return sorted(os.path.join(dest, w) for w in os.listdir(dest) if w.endswith(".whl"))


def build(ray_version: str, python: str, out: str, cache: str) -> int:
    wheels = download(ray_version, python, cache)
    carried = [w for w in wheels if _project(w) not in ON_DEVICE]
    print(f"wheels: {len(wheels)}, {_mb(sum(map(os.path.getsize, wheels)))}; carried {len(carried)} "
          f"(left out, already on the GPU machine: {', '.join(sorted({_project(w) for w in wheels} - {_project(w) for w in carried}))})")
    with tempfile.TemporaryDirectory(prefix="dgl-carry-") as site:
        for w in carried:
            with zipfile.ZipFile(w) as z:
                z.extractall(site)
        for d, _, files in os.walk(site):        # zip loses the executable bit: Ray's binaries need it
            for f in files:
                p = os.path.join(d, f)
                if _is_elf(p):
                    os.chmod(p, 0o755)
        print(f"unpacked: {_mb(_size(site))}")
        for rel in RAY_UNUSED:
            shutil.rmtree(os.path.join(site, rel), ignore_errors=True)
        for d, dirs, _ in list(os.walk(site)):
            for name in [x for x in dirs if x in ("tests", "__pycache__")]:
                shutil.rmtree(os.path.join(d, name), ignore_errors=True)
        print(f"without {', '.join(RAY_UNUSED)} and tests: {_mb(_size(site))}")
        strip = shutil.which("strip")
        if strip:
            for d, _, files in os.walk(site):
                for f in files:
                    p = os.path.join(d, f)
                    if _is_elf(p):
                        subprocess.run([strip, "--strip-unneeded", p], check=True)
            print(f"binaries stripped: {_mb(_size(site))}")
        else:
            print("strip not found: binaries kept as they are (the archive is larger)")
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        t0 = time.time()
        tmp = out + ".tmp"
        with tarfile.open(tmp, "w:xz", preset=9) as tar:
            for name in sorted(os.listdir(site)):
                tar.add(os.path.join(site, name), arcname=name)
        os.replace(tmp, out)
    packed, tree = os.path.getsize(out), tree_bytes()
    fits = packed + tree <= CARRY_LIMIT
    print(f"packed: {out} {_mb(packed)} ({time.time() - t0:.0f} s); with the tree ({_mb(tree)}): "
          f"{_mb(packed + tree)} of the {_mb(CARRY_LIMIT)} that travel: {'fits' if fits else 'DOES NOT FIT'}")
    return 0 if fits else 1


def check(archive: str, python: str) -> int:
    with tempfile.TemporaryDirectory(prefix="dgl-carry-check-") as site:
        with tarfile.open(archive) as tar:
            tar.extractall(site, filter="data")
        env = dict(os.environ, PYTHONPATH=site)
        r = subprocess.run([python, "-c", CHECK], env=env, capture_output=True, text=True)
        lines = (r.stdout.strip() or r.stderr.strip() or "no output").splitlines()
        print(lines[-1] if r.returncode == 0 else "\n".join(lines[-20:]))
        return r.returncode


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.carry_ray", description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default="3.12", help="the GPU machine's Python version (default 3.12)")
    p.add_argument("--ray-version", default=None, help="default: the Ray installed here")
    p.add_argument("--out", default=None, help="default .carry/ray-py<version>.tar.xz")
    p.add_argument("--cache", default=os.path.join(tempfile.gettempdir(), "dgl-carry-wheels"),
                   help="where pip puts the wheels (kept between runs)")
    p.add_argument("--check", default=None, metavar="PYTHON", help="run a Tune experiment with this interpreter "
                   "and the archive on its path (after building, or alone with --no-build)")
    p.add_argument("--no-build", action="store_true", help="only --check an archive built before")
    a = p.parse_args(argv)
    if a.ray_version is None:
        try:
            from importlib.metadata import version
            a.ray_version = version("ray")
        except Exception:
            a.ray_version = "2.60.0"
    out = a.out or os.path.join(ROOT, ".carry", f"ray-py{a.python.replace('.', '')}.tar.xz")
    rc = 0 if a.no_build else build(a.ray_version, a.python, out, a.cache)
    if a.check and rc == 0:
        rc = check(out, a.check)
    return rc


if __name__ == "__main__":
    sys.exit(main())
