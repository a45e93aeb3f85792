"""`benchmarks.gpu_check` runs on the GPU machine as it is: a plain checkout on PYTHONPATH, no install, no Ray,
no diptest, no pytest plugins (issue 20). Here: the same script at toy size (--smoke) in a copy of the tree
that travels, with those modules hidden."""
import os
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIDDEN = ("ray", "diptest")          # not on the GPU machine


def _travelling_tree(dest: str) -> str:
    """The files that travel to the GPU machine: tracked, and untracked ones git does not ignore."""
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    tree = os.path.join(dest, "tree")
    for f in files:
        src = os.path.join(ROOT, f)
        if f and os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(tree, f)), exist_ok=True)
            with open(src, "rb") as a, open(os.path.join(tree, f), "wb") as b:
                b.write(a.read())
    return tree


def _hiding(dest: str) -> str:
    """A folder first on PYTHONPATH whose packages shadow the hidden ones and fail to import, as missing ones do."""
    shim = os.path.join(dest, "hide")
    for name in HIDDEN:
        os.makedirs(os.path.join(shim, name))
        with open(os.path.join(shim, name, "__init__.py"), "w") as f:
            f.write(f"raise ImportError('{name} is not installed here (hidden by the test)')\n")
    return shim


def _env(tmp_path, *paths) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), OUT=str(tmp_path / "out"),
               PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")    # no pytest-timeout there either
    os.makedirs(env["OUT"], exist_ok=True)
    return env


def test_hidden_modules_do_not_import(tmp_path):
    shim = _hiding(str(tmp_path))
    r = subprocess.run([sys.executable, "-c", "import ray"], env=dict(os.environ, PYTHONPATH=shim),
                       capture_output=True, text=True)
    assert r.returncode != 0 and "ImportError" in r.stderr


def test_smoke_without_ray_passes_and_says_the_ray_part_was_not_run(tmp_path):
    tree = _travelling_tree(str(tmp_path))
    env = _env(tmp_path, _hiding(str(tmp_path)), ".")
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke"], cwd=tree, env=env,
                       capture_output=True, text=True, timeout=400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    md = open(os.path.join(env["OUT"], "gpu_check.md")).read()
    assert "sweep **not run: ray is not installed here**" in md
    for part in ("tests", "bench", "switches"):
        assert f"{part} **ok**" in md, md
    assert "ray not importable" in md                     # the environment line says so
    assert "pytest: " in md and " passed" in md           # the device tests ran (no plugins, no Ray)
    last = r.stdout.strip().splitlines()[-1]
    assert "all parts that ran ok; not run: sweep in " in last and last.endswith("exit code 0"), last


def test_with_ray_unpacks_a_carried_site_for_the_parts(tmp_path):
    """--with-ray puts a carried archive first on the path of the parts' processes (here a stand-in package)."""
    site = tmp_path / "site" / "carried_probe"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("WHERE = __file__\n")
    archive = tmp_path / "carried.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(site, arcname="carried_probe")
    sys.path.insert(0, ROOT)
    try:
        from benchmarks import gpu_check
        before = (list(sys.path), os.environ.get("PYTHONPATH"))
        try:
            folder = gpu_check._unpack_carried(str(archive))
            r = subprocess.run([sys.executable, "-c", "import carried_probe; print(carried_probe.WHERE)"],
                               capture_output=True, text=True)
            assert r.returncode == 0 and r.stdout.startswith(folder), r.stderr
        finally:
            sys.path[:] = before[0]
            if before[1] is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = before[1]
    finally:
        sys.path.remove(ROOT)


@pytest.mark.parametrize("argv, message", [
    (["--smoke", "--with-ray", "no-such.tar.xz"], "error: --with-ray no-such.tar.xz: no such file"),
    (["--smoke", "--parts", "tests,gpu"], "error: --parts: 'gpu' is not one of"),
])
def test_bad_arguments_are_one_line_errors(tmp_path, argv, message):
    r = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", *argv], cwd=ROOT,
                       env=_env(tmp_path, ROOT), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip().startswith(message) and len(r.stderr.strip().splitlines()) == 1, r.stderr
