"""Small fake sweeps in the layout a dgl_ray sweep writes (for tests, demos and the notebook).

:func:`write_fake_sweep` writes ``<root>/<name>/`` with one Ray Tune trial folder per (λ, seed)
(``params.json`` + ``result.json``, one JSON line per evaluation) and ``results.parquet`` with the
trainer's columns. Errors follow a toy coexistence picture: below ``lambda_c`` runs settle on the
L branch, above it on the H branch, with a seed-dependent coin near ``lambda_c``. Nothing here is
a result; it only exercises the readers and tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd


def fake_sweep_frame(*, name: str = "coexistence", lambdas: Iterable[float] = (0.2, 0.3, 0.4, 0.5, 0.6),
                     seeds: Iterable[int] = range(4), epochs: int = 5, lambda_c: float = 0.45,
                     eta: float = 0.4, diverged: Iterable[tuple[float, int]] = ()) -> pd.DataFrame:
    """The tidy rows of a fake fresh-run sweep (one row per trial per epoch)."""
    rows = []
    diverged = {(round(float(l), 6), int(s)) for l, s in diverged}
    k = 0
    for lam in lambdas:
        for seed in seeds:
            rng = np.random.default_rng(1000 * seed + int(round(lam * 1000)))
            p_high = 1.0 / (1.0 + np.exp(-(lam - lambda_c) / 0.03))
            high = rng.random() < p_high
            target = (0.55 + 0.3 * rng.random()) if high else (0.05 + 0.1 * rng.random())
            run = f"{k:05x}"[:5] + f"_{k:05d}"
            dead = (round(float(lam), 6), int(seed)) in diverged
            for ep in range(1, epochs + 1):
                err = target + (0.9 - target) * np.exp(-ep / 1.5) + 0.005 * rng.standard_normal()
                status = "running" if ep < epochs else "completed"
                if dead and ep == epochs:
                    err, status = np.nan, "diverged"
                rows.append(dict(run=run, experiment=name, family="S1", dataset="digits", model="cnn",
                                 width=1.0, eta=eta, noise="symmetric", seed=int(seed),
                                 **{"lambda": float(lam)}, epoch=ep, test_error=float(err),
                                 train_loss=float(2 * err), avg_cos=float(-0.2 + 0.4 * lam),
                                 gs_norm=1.0, gv_norm=1.0, c_sv=np.nan, lr=0.1, global_step=ep * 44,
                                 wall_time=0.1 * ep, status=status, phase="main", direction=None,
                                 origin=None, hold=np.nan, K=16))
            k += 1
    return pd.DataFrame(rows)


_CONFIG_KEYS = ["experiment", "family", "dataset", "model", "width", "eta", "noise", "seed", "lambda",
                "phase", "origin", "hold", "K"]


def write_fake_sweep(root: str | Path, *, name: str = "coexistence", parquet: bool = True,
                     drop_from_parquet: int = 0, **kw) -> Path:
    """Write a fake sweep under ``root/name`` and return that folder.

    ``drop_from_parquet`` leaves the last N trials out of ``results.parquet`` (a partial Parquet,
    as after an interrupted sweep); ``parquet=False`` writes no Parquet at all. Other keyword
    arguments go to :func:`fake_sweep_frame`.
    """
    df = fake_sweep_frame(name=name, **kw)
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    runs = list(dict.fromkeys(df["run"]))
    for i, run in enumerate(runs):
        g = df[df["run"] == run]
        first = g.iloc[0]
        cfg = {c: (None if pd.isna(first[c]) else first[c].item() if hasattr(first[c], "item")
                   else first[c]) for c in _CONFIG_KEYS}
        tag = f"eta={cfg['eta']},lambda={cfg['lambda']},seed={cfg['seed']}"
        trial = folder / f"train_dgl_{run}_{i}_{tag}_2026-01-01_00-00-00"
        trial.mkdir(exist_ok=True)
        (trial / "params.json").write_text(json.dumps(cfg, indent=1))
        with open(trial / "result.json", "w") as fh:
            for _, r in g.iterrows():
                rec = {k: (None if (isinstance(v, float) and np.isnan(v)) else
                           v.item() if hasattr(v, "item") else v) for k, v in r.items()
                       if k not in ("experiment",)}
                rec.update(trial_id=run, training_iteration=int(r["epoch"]), config=cfg,
                           done=bool(r["epoch"] == g["epoch"].max()), hostname="fake")
                fh.write(json.dumps(rec) + "\n")
    if parquet:
        keep = runs[: len(runs) - drop_from_parquet] if drop_from_parquet else runs
        df[df["run"].isin(keep)].to_parquet(folder / "results.parquet", index=False)
    return folder
