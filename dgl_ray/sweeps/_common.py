"""Plan builders and summary tables shared by the sweep families."""
from __future__ import annotations

import argparse
import itertools
import math

import numpy as np
import pandas as pd

from ..analysis.frames import final_rows, outcome_rows
from ..analysis.tables import branch_table
from ..errors import ConfigError
from ..paper import COLLAPSE_ACCEPT, ORDERED_ACCEPT
from ..trial_flags import parse_milestones
from ..tune.options import check_plan_size, scaled, seeds
from ..storage import join, storage_fs
from ..tune.runner import SweepSpec
from ..tune.searchers import BoundarySearcher, ChainedSearcher
from .family import get

ALIASES = {"lam": "lambda", "lambdas": "lambda", "seeds": "seed", "etas": "eta", "widths": "width"}


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
    check_plan_size(math.prod(len(axes[n]) for n in names),     # counted before the product is built
                    " x ".join(f"{len(axes[n])} {n}" for n in names))
    out = []
    for combo in itertools.product(*(axes[n] for n in names)):
        c = dict(base)
        c.update(zip(names, combo))
        out.append(c)
    return out


def chain_dir(o) -> str:
    fs, root = storage_fs(o.storage)
    # a URI keeps its query (endpoint_override=...) at the end, where pyarrow reads it
    return join(o.storage, o.name, "chain") if fs is not None else f"{root}/{o.name}/chain"


def const(value: float, epochs: int, name: str = "main") -> list[dict]:
    return [{"kind": "constant", "value": float(value), "epochs": int(epochs), "name": name}]


# ---- the digits defaults: each family's own table, measured ----------------------------------------
# Family.digits_defaults: option -> (digits value, why). The paper's values are CIFAR's; on the embedded
# digits default (tinycnn 8/16, η 0.4, 30 epochs, LR 0.1 constant) λ_c ≈ 0.44 and every collapsed run is
# the ≈0.89 trap. Measured with benchmarks/digits_families.py on the 2-core CPU (numbers in docs/FAMILIES.md).

def family_default(o, option: str, paper):
    """An option the user (or a preset) set wins; else the family's digits value on digits; else the paper's."""
    v = getattr(o, option, None)
    if v is not None:
        return v
    digits = get(o.family).digits_defaults
    if o.dataset == "digits" and option in digits:
        return digits[option][0]
    return paper


# ---- preparation runs of chained protocols (ordered / collapse checkpoints) -----------------------

BRANCHES = ("ordered", "collapse")
# The paper's Tα preparation runs (PROTOCOLS.md); milestones None = the data set's default schedule.
PAPER_PREP = {"ordered": dict(lam=0.35, epochs=50, milestones=[30, 40], op="<", accept=ORDERED_ACCEPT),
              "collapse": dict(lam=0.60, epochs=100, milestones=None, op=">=", accept=COLLAPSE_ACCEPT)}
# digits: 30 epochs at constant LR (the embedded default's schedule); the families' digits_defaults give λ.
DIGITS_PREP_EPOCHS = 30
# the ordered preparation's λ on digits (hysteresis, intervention, universality): (value, why)
ORDERED_LAMBDA_DIGITS = (0.30, "prep error 0.09-0.11 after 30 epochs (λ 0.35: 0.16-0.34, half rejected by < 0.20)")
PREP_THRESHOLDS = ("ordered_accept", "collapse_accept")     # the preparation options that are error thresholds
# "best k": the k lowest-error ordered runs, the k highest-error collapse runs
SELECT_HOW = {"ordered": "min", "collapse": "max"}


def add_prep_args(p, ordered_lambda=None, collapse_lambda=None, ordered_accept=ORDERED_ACCEPT,
                  collapse_accept=COLLAPSE_ACCEPT):
    """Per-branch options of the preparation runs: every number the paper's protocols vary."""
    p.add_argument("--prep-epochs", type=int, default=None,
                   help="both branches' checkpoint epochs (paper 50/100; digits 30); per branch below wins")
    for b, lam, acc in (("ordered", ordered_lambda, ordered_accept), ("collapse", collapse_lambda, collapse_accept)):
        op = PAPER_PREP[b]["op"]
        p.add_argument(f"--{b}-lambda", type=float, default=lam,
                       help=f"λ of the {b} preparation run (paper {PAPER_PREP[b]['lam']}; digits: the family's digits default)")
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
    ms = parse_milestones(text, f"--{b}-milestones", hint=" ('' for constant LR)")
    if any(m < 1 or m >= epochs for m in ms):
        raise ConfigError(f"--{b}-milestones={text!r}: each must be an epoch in 1..{epochs - 1}")
    return ms


def prep_seeds(o, b, default_n):
    n = getattr(o, f"{b}_n", None)
    if n is not None and n < 1:
        raise ConfigError(f"--{b}-n={n}: at least one {b} preparation run")
    if n is not None:
        check_plan_size(n, f"--{b}-n={n}")
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
             lambda_schedule=const(family_default(o, f"{b}_lambda", PAPER_PREP[b]["lam"]), e, "init"))
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
    for b in BRANCHES:          # preparation runs, counted before any is built
        check_plan_size(len(prep_seeds(o, b, default_n)) * len(o.eta_list) * len(o.width_list),
                        f"{b} preparation runs")
    planned = 0
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
                    children = children_of(b, seed, eta, width)
                    planned += 1 + len(children)
                    check_plan_size(planned, "preparation runs and their follow-ups")
                    stages.append((prep, acc, children, group))
    return ChainedSearcher(stages, chain_dir(o), select=select)


# ---- summaries -----------------------------------------------------------------------------------

def branch_summary(df: pd.DataFrame, axes=None) -> pd.DataFrame:
    kw = {} if axes is None else {"axes": axes}
    t = branch_table(df, **kw)
    keep = [c for c in t.columns if c not in ("n_missing", "frac_L", "std_error")]
    return t[keep]


def final_summary(df: pd.DataFrame, by: list[str], escape_below: float | None = None) -> pd.DataFrame:
    f = final_rows(df, ["run"])
    by = [b for b in by if b in f.columns]
    g = f.groupby(by, dropna=False)["test_error"]
    out = g.agg(n="size", mean_error="mean", min_error="min", max_error="max").reset_index()
    if escape_below is not None:
        out["escaped"] = g.apply(lambda e: int((e < escape_below).sum())).to_numpy()
    return out


# ---- preparation runs: how many were kept, how many rejected and why ------------------------------

def _fails(err: float, rule) -> bool:
    """True if a finite ``err`` fails an acceptance label such as '<0.2' or '>=0.4' ('none' never fails)."""
    import math
    import operator
    rule = str(rule or "none")
    if rule == "none" or err is None or (isinstance(err, float) and math.isnan(err)):
        return False        # no rule, or no error to judge (an errored run counts as "other")
    for op, fn in (("<=", operator.le), (">=", operator.ge), ("<", operator.lt), (">", operator.gt)):
        if rule.startswith(op):
            return not fn(float(err), float(rule[len(op):]))
    return False


def prep_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per branch (and η): preparation runs, how many were kept (have follow-ups), how many were
    rejected by the acceptance rule, by a best-k selection, or for another reason (errored, or their
    follow-ups have not run). Empty when the frame has no preparation runs."""
    if "role" not in df or not df["role"].eq("prep").any():
        return pd.DataFrame()
    preps = final_rows(df[df["role"].eq("prep")], ["run"])
    parents = set(df["parent"].dropna()) if "parent" in df else set()
    rows = []
    keys = [k for k in ("branch", "eta") if k in preps]
    for k, g in preps.groupby(keys, dropna=False) if keys else [((), preps)]:
        k = k if isinstance(k, tuple) else (k,)
        kept = g["plan_id"].isin(parents) if "plan_id" in g else pd.Series(False, index=g.index)
        rule = g["accept"] if "accept" in g else pd.Series("none", index=g.index)
        failed = pd.Series([_fails(e, r) for e, r in zip(g["test_error"], rule)], index=g.index)
        selected_out = ~kept & ~failed & (g["select"].notna() if "select" in g else False)
        rec = dict(zip(keys, k))
        rec.update(n_prep=len(g), kept=int(kept.sum()), rejected_rule=int((~kept & failed).sum()),
                   rejected_selection=int(selected_out.sum()),
                   rejected_other=int((~kept & ~failed & ~selected_out).sum()),
                   rule=", ".join(sorted(set(map(str, rule.dropna())))) or "none",
                   mean_error=g["test_error"].mean())
        rows.append(rec)
    return pd.DataFrame(rows)


def print_prep_counts(df: pd.DataFrame) -> None:
    """One line per branch: kept / rejected preparation runs (never dropped without a word)."""
    t = prep_table(df)
    for _, r in t.iterrows():
        where = " ".join(f"{k}={r[k]}" for k in ("branch", "eta") if k in t)
        rej = r["rejected_rule"] + r["rejected_selection"] + r["rejected_other"]
        print(f"preparation runs {where}: {r['n_prep']} run, {r['kept']} kept, {rej} rejected "
              f"({r['rejected_rule']} by the rule {r['rule']}, {r['rejected_selection']} by best-k selection, "
              f"{r['rejected_other']} errored or without follow-ups)")


def with_prep_counts(table_fn):
    """A chained family's summary: the preparation-run counts first, then its own table."""
    def summarize(df):
        print_prep_counts(df)
        return table_fn(df)
    return summarize


# ---- the adaptive boundary search (coexistence 1-D; scan λ x η and finite_size λ x width) -------------

def add_adaptive_args(p, budget: bool = True) -> None:
    """The adaptive search's options. Absent from a plan's options unless given (argparse.SUPPRESS), so
    the manifests of plans that do not use them stay as they were and their sweeps resume."""
    if budget:
        p.add_argument("--adaptive", type=int, default=argparse.SUPPRESS, metavar="BUDGET",
                       help="adaptive boundary search with at most this many trials instead of the grid "
                            "(λ within the --lambdas range)")
    p.add_argument("--target-sd", type=float, default=argparse.SUPPRESS, metavar="SD",
                   help="adaptive: stop once SD(λ_c) <= SD and the coexistence width's 95%% interval is within "
                        "±25%% (at every axis value; default: spend the whole budget)")


def adaptive_searcher(o, base: dict, lams: list, *, axis: str | None = None, axis_values=(), n0: int = 0,
                      step: float = 0.0, known=()) -> BoundarySearcher:
    """The family's --adaptive BUDGET search: λ in [min, max] of ``lams`` (continuous, or on a ``step``
    grid when > 0), ``n0`` trials at each of ``lams`` (x each axis value) first, then D-optimal batches;
    ``known``: the results already in the sweep's folder (BoundarySearcher's ``known``)."""
    budget = getattr(o, "adaptive", None)
    if budget < 1:
        raise ConfigError(f"--adaptive={budget}: the budget must be >= 1 trial")
    target = getattr(o, "target_sd", None)
    if target is not None and not 0 < target < 1:
        raise ConfigError(f"--target-sd={target}: the SD of λ_c at which the search stops, in (0, 1)")
    if step < 0:
        raise ConfigError(f"--adaptive-step={step}: must be >= 0 (0: continuous λ)")
    if n0 < 0:
        raise ConfigError(f"--adaptive-n0={n0}: must be >= 0 (0: no initial design)")
    lo, hi = min(lams), max(lams)
    if not lo < hi:
        raise ConfigError(f"--adaptive searches λ within the --lambdas range; --lambdas gives only {lo:g}: "
                          f"give at least two values (the bounds)")
    candidates = None
    if step > 0:
        candidates = np.round(lo + step * np.arange(int(math.floor((hi - lo) / step + 1e-9)) + 1), 10).tolist()
    return BoundarySearcher(base, lo, hi, budget, axis=axis, axis_values=axis_values, target_sd=target,
                            known=known, start=lams, n0=n0, max_ahead=max(2, o.max_concurrent or 2),
                            candidates=candidates)


# the second axis of a two-dimensional --adaptive search: its config key -> (its name in prose, its option)
AXIS_OPTIONS = {"eta": ("η", "etas"), "width": ("width", "widths")}


def adaptive_plan(family: str, o, base: dict, lams: list, *, axis: str | None = None, n0: int = 0,
                  step: float = 0.0) -> SweepSpec:
    """A family's --adaptive plan: one (η, width) cell in one dimension; in two, ``axis`` ("eta" or
    "width") over its given values at one value of the other. Its summary prints the design's boundary
    (:func:`adaptive_summary`), then the branch table."""
    lists = {"eta": list(o.eta_list), "width": list(o.width_list)}
    if axis is None:
        if len(lists["eta"]) > 1 or len(lists["width"]) > 1:
            raise ConfigError("--adaptive searches one (η, width) cell; give one --etas and one --widths value")
        b = dict(base, eta=lists["eta"][0], width=lists["width"][0], seed=(o.seed_list or [0])[0])
        # the folder's results of this cell (--extend)
        known = [k for k in o.known if math.isclose(k["eta"], b["eta"]) and math.isclose(k["width"], b["width"])]
        s = adaptive_searcher(o, b, lams, n0=n0, step=step, known=known)
    else:
        other = next(k for k in AXIS_OPTIONS if k != axis)
        (name, flag), (other_name, other_flag) = AXIS_OPTIONS[axis], AXIS_OPTIONS[other]
        if len(lists[other]) > 1 or len(lists[axis]) < 2:
            raise ConfigError(f"{family} --adaptive searches λ x {name} at one {other_name}: give one --{other_flag} "
                              f"value and at least two --{flag} values (got {other_flag} {lists[other]}, "
                              f"{flag} {lists[axis]})")
        b = dict(base, **{other: lists[other][0]}, seed=(o.seed_list or [0])[0])
        s = adaptive_searcher(o, b, lams, axis=axis, axis_values=tuple(lists[axis]), n0=n0, step=step,
                              known=o.known)

    def summarize(df):
        adaptive_summary(df, s)
        return branch_summary(df)
    return SweepSpec(family, s, summarize=summarize)


def adaptive_summary(df: pd.DataFrame, searcher: BoundarySearcher) -> None:
    """Print the boundary of the sweep's outcomes (every finished or decided run of the searched cells,
    a folder's earlier runs included) as the searcher's design estimates it: λ_c ± SD, the width and its
    95% interval, the trap fraction of H, per axis value in two dimensions."""
    design = searcher.empty_design()
    f = outcome_rows(df)      # decided runs too (final_rows leaves them out: they have no final error)
    cols = [c for c in ("outcome", "lambda", "eta", "width") if c in f]
    used = 0
    for row in f[cols].to_dict("records"):
        if not searcher.models(row):
            continue
        design.add(row["lambda"], str(row["outcome"]), None if design.axis is None else row[design.axis])
        used += 1
    s = design.summary()
    cells = [(None, s)] if design.axis is None else list(s.items())
    for x, d in cells:
        where = "" if x is None else f" at {design.axis} {x:g}"
        lo, hi = d["width_ci"]
        print(f"adaptive: λ_c{where} = {d['lambda_c']:.4f} ± {d['lambda_c_sd']:.4f} (posterior SD), coexistence "
              f"width {d['width']:.4f} (95% interval {lo:.4f}–{hi:.4f}), P(trap | H) {d['p_trap']:.2f}, "
              f"{d['n']} trials")
    print(f"adaptive: {used} runs with an outcome")
