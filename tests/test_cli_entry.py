"""The ``dgl-ray`` console command: subcommands hand on to the python -m entry points."""
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

from dgl_ray.cli import main
from dgl_ray.sweeps.family import families

ROOT = Path(__file__).resolve().parents[1]


def test_console_script_is_declared_and_resolves():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, func = scripts["dgl-ray"].split(":")
    import importlib
    assert getattr(importlib.import_module(module), func) is main


def test_help_lists_every_family(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("sweep", "train", "report", *families()):
        assert word in out


def test_python_m_dgl_ray_is_the_same_command():
    r = subprocess.run([sys.executable, "-m", "dgl_ray", "--help"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and "coexistence" in r.stdout


def test_sweep_subcommand_runs_the_family(tmp_path, capsys):
    assert main(["sweep", "coexistence", "--lambdas", "0.3,0.5", "--n", "2", "--storage", str(tmp_path),
                 "--dry-run"]) == 0
    assert "4 trials (grid)" in capsys.readouterr().out


def test_sweep_preset_and_bad_input(tmp_path, capsys):
    assert main(["sweep", "--config", str(ROOT / "sweeps" / "S1.toml"), "--storage", str(tmp_path),
                 "--dry-run", "--n", "1"]) == 0
    capsys.readouterr()
    assert main(["sweep", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "nosuch" in err and "coexistence" in err and len(err.splitlines()) == 1
    assert main(["sweep", "coexistence", "--n", "0", "--storage", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: --n=0")
    assert main(["frobnicate"]) == 2


def test_train_and_report_subcommands(tmp_path, capsys):
    r = subprocess.run([sys.executable, "-m", "dgl_ray", "train", "--help"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0 and "dgl_ray.train" in r.stdout
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_help_reads_each_familys_own_record_without_loading_torch_or_ray():
    """`dgl-ray --help` lists every family's name and summary as its registered record holds them, and
    answers before torch, Ray or scipy load (the family modules load all three)."""
    from dgl_ray.sweeps.family import summaries
    assert summaries() == {name: f.summary for name, f in families().items()}
    probe = ("import sys; from dgl_ray.cli import main; main(['--help']); "
             "print(sorted(m for m in ('torch', 'ray', 'scipy') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "[]", run.stdout
    for name, f in families().items():
        if f.plan.__module__.startswith("dgl_ray.sweeps."):        # the package's own (a test may register more)
            assert f"  {name:<14}{f.summary}" in run.stdout
