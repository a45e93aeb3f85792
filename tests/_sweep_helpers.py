"""Helpers for the tune/sweeps tests: run a family in-process, read its Parquet."""
import importlib
import os

import pandas as pd
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY = ["--epochs", "2", "--progress-interval", "30", "--checkpoint-every", "1"]


def run_family(family, storage, *args, name=None):
    mod = importlib.import_module(f"dgl_ray.sweeps.{family}")
    argv = ["--storage", str(storage), "--name", name or family, *args]
    return mod.main(argv)


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
    assert not ray.is_initialized()
    yield
    assert not ray.is_initialized(), "validation must fail before ray.init"
