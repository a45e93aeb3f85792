"""Helpers for the tune/sweeps tests: run a family in-process, read its Parquet."""
import importlib
import os

import pandas as pd

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
