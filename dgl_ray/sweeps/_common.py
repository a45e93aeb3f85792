"""Plan builders and summary tables shared by the sweep families."""
from __future__ import annotations

import itertools

import pandas as pd

from ..errors import ConfigError
from ..tune.cli import scaled
from ..tune.runner import storage_fs

ALIASES = {"lambda": "lam", "lambdas": "lam", "seeds": "seed", "etas": "eta", "widths": "width"}


def grid(base: dict, axes: dict, order: str | None, default_order: str) -> list[dict]:
    """Every combination of ``axes`` (name -> values) on top of ``base``, outermost axis first as
    ``order`` says (``seed,lam``: all λ of seed 0 first, so partial results show the whole curve)."""
    names = [ALIASES.get(n.strip(), n.strip()) for n in (order or default_order).split(",") if n.strip()]
    unknown = [n for n in names if n not in axes]
    if unknown:
        raise ConfigError(f"--order: unknown axes {unknown}; allowed: {', '.join(axes)} (lambda = lam)")
    names += [n for n in axes if n not in names]
    for n in names:
        if not axes[n]:
            raise ConfigError(f"axis {n!r} has no values; every range must hold at least one value")
    out = []
    for combo in itertools.product(*(axes[n] for n in names)):
        c = dict(base)
        c.update(zip(names, combo))
        out.append(c)
    return out


def chain_dir(o) -> str:
    fs, root = storage_fs(o.storage)
    base = o.storage.rstrip("/") if fs is not None else root
    return f"{base}/{o.name}/chain"


def const(value: float, epochs: int, name: str = "main") -> list[dict]:
    return [{"kind": "constant", "value": float(value), "epochs": int(epochs), "name": name}]


def ordered_prep(o, seed, eta, width, lam=0.35, accept=("<", 0.20), **extra):
    """The paper's ordered checkpoint: λ 0.35, 50 epochs, LR [30, 40] (digits: 30 epochs, constant LR)."""
    e = scaled(o, getattr(o, "prep_epochs", None), 50, 30)
    c = dict(extra, seed=seed, eta=eta, width=width, lambda_schedule=const(lam, e, "init"), branch="ordered")
    if o.dataset != "digits" and o.lr_milestones is None:
        c["lr_milestones"] = [30, 40]
    return c, accept


def collapse_prep(o, seed, eta, width, lam=0.60, accept=(">=", 0.40), **extra):
    """The paper's collapse checkpoint: λ 0.60, 100 epochs (digits: 30 epochs)."""
    e = scaled(o, getattr(o, "prep_epochs", None), 100, 30)
    c = dict(extra, seed=seed, eta=eta, width=width, lambda_schedule=const(lam, e, "init"), branch="collapse")
    return c, accept


# ---- summaries -----------------------------------------------------------------------------------

def branch_summary(df: pd.DataFrame, axes=None) -> pd.DataFrame:
    from ..analysis import branch_table
    kw = {} if axes is None else {"axes": axes}
    t = branch_table(df, **kw)
    keep = [c for c in t.columns if c not in ("n_missing", "frac_L", "std_error")]
    return t[keep]


def final_summary(df: pd.DataFrame, by: list[str], escape_below: float | None = None) -> pd.DataFrame:
    from ..analysis import final_rows
    f = final_rows(df, ["run"])
    by = [b for b in by if b in f.columns]
    g = f.groupby(by, dropna=False)["test_error"]
    out = g.agg(n="size", mean_error="mean", min_error="min", max_error="max").reset_index()
    if escape_below is not None:
        out["escaped"] = g.apply(lambda e: int((e < escape_below).sum())).to_numpy()
    return out
