"""Plan builders and summary tables shared by the sweep families."""
from __future__ import annotations

import itertools

import pandas as pd

from ..errors import ConfigError
from ..tune.cli import scaled, seeds
from ..tune.runner import storage_fs
from ..tune.searchers import ChainedSearcher

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


# ---- preparation runs of chained protocols (ordered / collapse checkpoints) -----------------------

BRANCHES = ("ordered", "collapse")
# The paper's Tα preparation runs (PROTOCOLS.md); milestones None = the data set's default schedule.
PAPER_PREP = {"ordered": dict(lam=0.35, epochs=50, milestones=[30, 40], op="<", accept=0.20),
              "collapse": dict(lam=0.60, epochs=100, milestones=None, op=">=", accept=0.40)}
# digits: 30 epochs at constant LR (the embedded default's schedule); see DIGITS_DEFAULTS for λ.
DIGITS_PREP_EPOCHS = 30
# "best k": the k lowest-error ordered runs, the k highest-error collapse runs
SELECT_HOW = {"ordered": "min", "collapse": "max"}


def add_prep_args(p, ordered_lambda=0.35, collapse_lambda=0.60, ordered_accept=0.20, collapse_accept=0.40):
    """Per-branch options of the preparation runs: every number the paper's protocols vary."""
    p.add_argument("--prep-epochs", type=int, default=None,
                   help="both branches' checkpoint epochs (paper 50/100; digits 30); per branch below wins")
    for b, lam, acc in (("ordered", ordered_lambda, ordered_accept), ("collapse", collapse_lambda, collapse_accept)):
        op = PAPER_PREP[b]["op"]
        p.add_argument(f"--{b}-lambda", type=float, default=lam, help=f"λ of the {b} preparation run")
        p.add_argument(f"--{b}-epochs", type=int, default=None,
                       help=f"{b} preparation epochs (paper {PAPER_PREP[b]['epochs']}; digits {DIGITS_PREP_EPOCHS})")
        p.add_argument(f"--{b}-milestones", default=None,
                       help=f"{b} preparation LR milestones, comma list ('' constant; default: paper "
                            f"{PAPER_PREP[b]['milestones'] or 'the data set default'}, digits constant)")
        p.add_argument(f"--{b}-accept", default=str(acc),
                       help=f"{b} checkpoint kept if error {op} this ('none': no threshold)")
        p.add_argument(f"--{b}-seed-offset", type=int, default=0,
                       help=f"{b} runs (preparation and its follow-ups) use seed + this (Tβ2 collapse: 100)")
        p.add_argument(f"--{b}-n", type=int, default=None, help=f"{b} preparation runs (default: the seeds)")
        p.add_argument(f"--{b}-best", type=int, default=0,
                       help=f"keep only the k best accepted {b} runs of each (η, width) cell (0 = all; "
                            f"Tβ2 v3: best 3 of 10)")


def _accept_rule(o, b):
    text = str(getattr(o, f"{b}_accept")).strip().lower()
    if text in ("none", ""):
        return None
    try:
        return PAPER_PREP[b]["op"], float(text)
    except ValueError:
        raise ConfigError(f"--{b}-accept={text!r}; expected an error threshold (number) or none") from None


def _milestones(o, b, epochs):
    text = getattr(o, f"{b}_milestones", None)
    if text is None:
        if o.lr_milestones is not None:
            return list(o.lr_milestones)
        if o.dataset == "digits":
            return []
        m = PAPER_PREP[b]["milestones"]
        return None if m is None else list(m)
    try:
        ms = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--{b}-milestones={text!r}; expected a comma list of epochs ('' for constant LR)") from None
    if any(m < 1 or m >= epochs for m in ms):
        raise ConfigError(f"--{b}-milestones={text!r}: each must be an epoch in 1..{epochs - 1}")
    return ms


def prep_seeds(o, b, default_n):
    n = getattr(o, f"{b}_n", None)
    if n is not None and n < 1:
        raise ConfigError(f"--{b}-n={n}: at least one {b} preparation run")
    base = list(range(n)) if n is not None else seeds(o, default_n)
    off = getattr(o, f"{b}_seed_offset", 0) or 0
    if off < 0:
        raise ConfigError(f"--{b}-seed-offset={off} must be >= 0")
    return [s + off for s in base]


def prep_config(o, b, seed, eta, width, base):
    """One preparation run of branch ``b``: (config, acceptance rule)."""
    e = getattr(o, f"{b}_epochs", None) or getattr(o, "prep_epochs", None)
    e = scaled(o, e, PAPER_PREP[b]["epochs"], DIGITS_PREP_EPOCHS)
    if e < 1:
        raise ConfigError(f"--{b}-epochs={e} must be >= 1")
    c = dict(base, seed=seed, eta=eta, width=width, branch=b,
             lambda_schedule=const(getattr(o, f"{b}_lambda"), e, "init"))
    ms = _milestones(o, b, e)
    if ms is not None:
        c["lr_milestones"] = ms
    else:
        c.pop("lr_milestones", None)
    acc = _accept_rule(o, b)
    c["accept"] = "none" if acc is None else f"{acc[0]}{acc[1]:g}"
    return c, acc


def chained_searcher(o, base, children_of, default_n):
    """Per (seed, η, width) and branch, a preparation run and ``children_of(b, seed, eta, width)``;
    --{b}-best k keeps the k best accepted runs of each (branch, η, width) cell."""
    stages, select = [], {}
    for b in BRANCHES:
        k = getattr(o, f"{b}_best", 0) or 0
        if k < 0:
            raise ConfigError(f"--{b}-best={k} must be >= 0 (0 keeps every accepted run)")
        for seed in prep_seeds(o, b, default_n):
            for eta in o.eta_list:
                for width in o.width_list:
                    prep, acc = prep_config(o, b, seed, eta, width, base)
                    group = None
                    if k:
                        group = f"{b}|eta={eta:g}|width={width:g}"
                        select[group] = (k, SELECT_HOW[b])
                        prep["select"] = f"best {k}"
                    stages.append((prep, acc, children_of(b, seed, eta, width), group))
    return ChainedSearcher(stages, chain_dir(o), select=select)


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
