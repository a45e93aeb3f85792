"""Helpers for the tune/sweeps tests: run a family in-process, read its Parquet, interrupt a sweep."""
import importlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY = ["--epochs", "2", "--progress-interval", "30", "--checkpoint-every", "1"]


def run_family(family, storage, *args, name=None):
    mod = importlib.import_module(f"dgl_ray.sweeps.{family}")
    argv = ["--storage", str(storage), "--name", name or family, *args]
    return mod.FAMILY.main(argv)


ROOT = Path(__file__).resolve().parents[1]


def interrupt_sweep(cmd, ready, sig, wait_s: float = 240) -> tuple[int, str]:
    """Run a sweep command in its own process group, send ``sig`` to its driver (as Ctrl-C or a
    scheduler would) once ``ready()`` holds, and return (exit code, output). Fails if the sweep ended first."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
    try:
        deadline = time.time() + wait_s
        while time.time() < deadline and not ready() and p.poll() is None:
            time.sleep(0.2)
        assert p.poll() is None, "the sweep ended before it could be interrupted"
        os.kill(p.pid, sig)
        out, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
    return p.returncode, out


def parquet(storage, name) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(str(storage), name, "results.parquet"))


def finals(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("epoch").groupby("run").tail(1)


def one_line_error(capsys) -> str:
    """The command's stderr, which must be exactly one `error: ...` line."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.fixture
def no_ray():
    """Import as an autouse fixture (see test_tune_cli.py): validation must fail before ray.init."""
    import ray
    if ray.is_initialized():      # left by an earlier module's in-process sweep, not by this test
        ray.shutdown()
    yield
    assert not ray.is_initialized(), "validation must fail before ray.init"
