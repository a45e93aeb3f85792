"""The paper's tables as pure functions: tidy frame in (see :mod:`.frames`), DataFrame out.

Errors are fractions in [0, 1]. Thresholds are keyword parameters whose defaults are the paper's
(PROTOCOLS.md, "How the paper reduces results"). A run's final error is its last evaluation
(highest epoch) unless a table says otherwise. Diverged runs (``status == "diverged"``, error NaN)
are counted in an ``n_diverged`` column, never dropped silently.

Every table groups by λ and by each "axis" column of ``axes`` that is present and takes more than one
value in the frame (dataset, model, width, noise, eta, hold, and the protocol: family and epochs, by
default), so that a sweep over η or width gives one row per cell without asking and runs of different
protocols never meet in one row.

Partial data (a sweep still running or crashed): a run counts as final only when its last row is
final (``run_status`` completed or diverged, :func:`.frames.final_rows`); the others (unfinished,
errored, never started) are counted as missing (``n_missing``, or excluded with the reason), never
as a branch. Runs without a λ (a failed initialisation of an archived ladder) cannot be placed on
the λ axis: they are left out of the rows and counted in the table's ``attrs["n_without_lambda"]``.

Decided runs (stopped early by the branch classifier, ``--decide-early``; :func:`.frames.decided`) have a
branch but no final error: :func:`branch_table` and :func:`critical_point`'s logistic fit count their
branch (:func:`.frames.outcome_rows`); every table of final errors or trajectories leaves them out and
says how many in ``attrs["n_decided"]``; they are never counted as missing.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..boundary import fit_logistic, resample_within_levels
from .frames import decided, final_rows, not_final, outcome_rows

# The paper's thresholds: one home, dgl_ray.paper (re-exported here for tables' callers)
from ..paper import (DEATH_MIN, DEATH_RUN, H_MIN, L_MAX, SPINODAL_DOWN, SPINODAL_RUN, SPINODAL_UP,  # noqa: F401
                     T_MIN)

# The protocol of a run (its family and length): runs of two protocols never share a row.
PROTOCOL_AXES: tuple[str, ...] = ("family", "epochs")
DEFAULT_AXES: tuple[str, ...] = ("dataset", "model", "width", "noise", "eta", "hold") + PROTOCOL_AXES


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------

def varying_axes(df: pd.DataFrame, axes: Iterable[str] = DEFAULT_AXES) -> list[str]:
    """The columns of ``axes`` present in ``df`` that take more than one value (NaN counts as one)."""
    return [a for a in axes if a in df.columns and df[a].nunique(dropna=False) > 1]


def _drop_phases(df: pd.DataFrame, exclude: Sequence[str] | None) -> pd.DataFrame:
    if not exclude or "phase" not in df:
        return df
    return df[~df["phase"].isin(list(exclude))]


def _diverged(df: pd.DataFrame) -> pd.Series:
    if "status" in df:
        return df["status"].astype(object).eq("diverged")
    return pd.Series(False, index=df.index)


def _diverged_and_missing(g: pd.DataFrame, e: pd.Series | None = None) -> dict:
    """``n_diverged`` and ``n_missing`` of a group of final rows: a run without a final error (``e``,
    the group's test errors by default) is missing unless it diverged."""
    div = _diverged(g)
    e = g["test_error"] if e is None else e
    return {"n_diverged": int(div.sum()), "n_missing": int((e.isna() & ~div).sum())}


def _groups(df: pd.DataFrame, keys: list[str]):
    if not keys:
        yield (), df
        return
    for k, g in df.groupby(keys, dropna=False, sort=True, observed=True):   # categoricals: no empty cells
        yield (k if isinstance(k, tuple) else (k,)), g


def _count_cell(d: pd.DataFrame, keys: list[str], values: tuple) -> int:
    """Rows of ``d`` in the cell ``keys == values`` (NaN matches NaN)."""
    m = pd.Series(True, index=d.index)
    for c, v in zip(keys, values):
        m &= d[c].isna() if pd.isna(v) else d[c].eq(v)
    return int(m.sum())


def _sort(out: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return out.sort_values(keys, kind="stable").reset_index(drop=True) if len(out) and keys else out


def _placed(f: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(rows with a λ, number of runs without one): a run without a λ cannot be a row of a table by λ."""
    lost = f["lambda"].isna()
    return f[~lost], int(f.loc[lost, "run"].nunique())


def _with_unplaced(out: pd.DataFrame, n_without_lambda: int, left_decided: int = 0) -> pd.DataFrame:
    out.attrs["n_without_lambda"] = n_without_lambda
    return _noting_decided(out, left_decided)


def _noting_decided(out: pd.DataFrame, left_decided: int) -> pd.DataFrame:
    out.attrs["n_decided"] = left_decided      # decided runs left out of a table of final errors
    return out


def _without_decided(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the rows of runs that were not decided early, how many runs were): a decided run's trajectory
    stops at its decision, so it has neither a final error nor a whole history."""
    out = decided(df)
    return df[~out], int(df.loc[out, "run"].nunique()) if out.any() else 0


# --------------------------------------------------------------------------------------------------
# branch table
# --------------------------------------------------------------------------------------------------

def branch_table(df: pd.DataFrame, *, L: float = L_MAX, H: float = H_MIN, T: float = T_MIN,
                 axes: Iterable[str] = DEFAULT_AXES, per_step: bool = False,
                 ddof: int = 1) -> pd.DataFrame:
    """Branch counts per λ (paper rule: L if error <= L, H if >= H, intermediate between, T if >= T).

    Uses each run's final error (``per_step=True``: the last evaluation of every λ step of every run,
    for ladders). Returns one row per λ (and per value of each varying axis) with ``n`` (all runs,
    diverged included), ``L``, ``intermediate``, ``H``, ``T`` (T is a subset of H, as in the paper),
    ``n_diverged``, ``n_missing`` (error NaN without a diverged status), ``frac_L``, ``frac_H``,
    ``mean_error`` and ``std_error`` (``ddof``, over runs with an error; 1 by default, the
    critical-point rule of the paper for the spread of final errors at one λ).

    Decided runs (``--decide-early``) count in ``n`` and, by their decided branch, in ``frac_H``; the
    ``decided`` column counts them and ``decided_H`` those decided H. They are never in the error columns
    (L, intermediate, H, T, mean_error, std_error); ``frac_L`` is L over the runs with a final outcome
    (n − decided), since a run decided not_H may end L or intermediate.
    """
    by = ["run", "lambda", "direction"] if per_step else ["run"]
    f, unplaced = _placed(final_rows(_drop_phases(df, ("init",)) if per_step else df, by))
    early = outcome_rows(df) if not per_step else f.iloc[:0]
    early, unplaced_early = _placed(early[early["decided"]] if len(early) else early)
    keys = varying_axes(pd.concat([f, early], sort=False) if len(early) else f, axes) + ["lambda"]
    f = f.assign(_decided=False, _decided_h=False)
    if len(early):
        f = pd.concat([f, early.assign(_decided=True, _decided_h=early["outcome"].astype(str).ne("not_H"),
                                       test_error=np.nan)], ignore_index=True, sort=False)
    rows = []
    for k, g in _groups(f, keys):
        fin = g[~g["_decided"].astype(bool)]
        e = fin["test_error"]
        n, n_dec, n_dec_h = len(g), int(g["_decided"].sum()), int(g["_decided_h"].sum())
        rec = dict(zip(keys, k))
        rec.update(n=n, L=int((e <= L).sum()), intermediate=int(((e > L) & (e < H)).sum()),
                   H=int((e >= H).sum()), T=int((e >= T).sum()), **_diverged_and_missing(fin, e))
        rec.update(decided=n_dec, decided_H=n_dec_h,
                   frac_L=rec["L"] / (n - n_dec) if n > n_dec else np.nan,
                   frac_H=(rec["H"] + n_dec_h) / n if n else np.nan,
                   mean_error=e.mean(), std_error=e.std(ddof=ddof) if e.notna().sum() > ddof else np.nan)
        rows.append(rec)
    return _with_unplaced(_sort(pd.DataFrame(rows), keys), unplaced + unplaced_early)


def _lambda_path(df: pd.DataFrame) -> pd.Series:
    """Each run's λ path outside its init phase, as a label: ``λ=0.42`` for a run at one λ, else
    ``λ 0.2→0.64 (23 steps)``."""
    d = _drop_phases(df, ("init",)).dropna(subset=["lambda"])
    seq = d.groupby(d["run"].astype(str), sort=False)["lambda"].agg(["first", "last", "nunique"])
    return pd.Series([f"λ={a:g}" if n == 1 else f"λ {a:g}→{b:g} ({n} steps)"
                      for a, b, n in zip(seq["first"], seq["last"], seq["nunique"])], index=seq.index)


def final_error_table(df: pd.DataFrame, by: Sequence[str] = ("schedule_kind",), *,
                      L: float = L_MAX, H: float = H_MIN, ddof: int = 1,
                      axes: Iterable[str] = DEFAULT_AXES) -> pd.DataFrame:
    """Final error per group of ``by`` (λ schedules: one row per schedule, never pooled by the
    schedule's final λ), and per varying axis: ``n``, ``L``, ``intermediate``, ``H``,
    ``mean_error``, ``std_error`` (``ddof``), ``min_error``, ``max_error``, ``n_missing``,
    ``n_diverged``.

    A frame without any ``by`` column (fresh runs, the archive's sub-experiments) is grouped by each
    run's ``lambda_path`` (its λ, or its ladder's first and last λ) instead: runs of different λ are
    different protocols, never one row."""
    df, left_decided = _without_decided(df)     # no final error, no whole history
    f = final_rows(df, ["run"])
    by = [c for c in by if c in f.columns and f[c].notna().any()]
    if not by:
        f = f.assign(lambda_path=f["run"].astype(str).map(_lambda_path(df)))
        by = ["lambda_path"]
    keys = varying_axes(f, axes) + by
    rows = []
    for k, g in _groups(f, keys):
        e = pd.to_numeric(g["test_error"], errors="coerce")
        rec = dict(zip(keys, k))
        rec.update(n=len(g), L=int((e <= L).sum()), intermediate=int(((e > L) & (e < H)).sum()),
                   H=int((e >= H).sum()), mean_error=e.mean(),
                   std_error=e.std(ddof=ddof) if e.notna().sum() > ddof else np.nan,
                   min_error=e.min(), max_error=e.max(), **_diverged_and_missing(g, e))
        rows.append(rec)
    return _noting_decided(_sort(pd.DataFrame(rows, columns=keys + [
        "n", "L", "intermediate", "H", "mean_error", "std_error", "min_error", "max_error",
        "n_missing", "n_diverged"]), keys), left_decided)

# --------------------------------------------------------------------------------------------------
# gap table
# --------------------------------------------------------------------------------------------------

def _side(f: pd.DataFrame, L: float, H: float) -> pd.Series:
    """H/L side of each row: its origin where it has one, else its branch by error."""
    by_err = np.where(f["test_error"] >= H, "H", np.where(f["test_error"] <= L, "L", None))
    by_origin = f["origin"].astype(object).map({"collapse": "H", "ordered": "L"}) if "origin" in f else None
    if by_origin is None:
        return pd.Series(by_err, index=f.index, dtype=object)
    return by_origin.where(f["origin"].notna(), pd.Series(by_err, index=f.index)).astype(object)


def gap_table(df: pd.DataFrame, *, L: float = L_MAX, H: float = H_MIN,
              axes: Iterable[str] = DEFAULT_AXES, pair_on: str = "seed",
              exclude_phases: Sequence[str] = ("init",), ddof: int = 0) -> pd.DataFrame:
    """Gap Δ(λ) = mean error of the H side − mean error of the L side at the same λ (paper rule).

    A row is on the H side if its run started from a collapse checkpoint (``origin == "collapse"``),
    on the L side if from an ordered one; at a λ where some runs have an origin only those count
    (``basis == "origin"``). Where none has one, runs are placed by their error (H if >= H, L if
    <= L, neither otherwise; ``basis == "branch"``). Each run contributes the last evaluation of each λ step, so
    fresh runs give their final error and ladders one value per λ.

    W2 rule: where runs with both origins pair by ``pair_on`` (seed) at a λ, the per-seed differences
    H − L are summarised as ``paired_gap_mean``, ``paired_gap_std`` (``ddof``; 0 = the population
    SD of the paper's W2 table) and
    ``paired_gap_max``, with ``n_pairs``.

    Returns per λ (and varying axis): ``n_L``, ``n_H``, ``mean_L``, ``mean_H``, ``gap``, ``basis``
    (origin|branch), ``n_diverged``, ``n_missing`` (no error, not diverged: e.g. never evaluated),
    and the paired columns (NaN where nothing pairs).
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    f, unplaced = _placed(final_rows(_drop_phases(df, exclude_phases), ["run", "lambda", "direction"]))
    f = f.assign(_side=_side(f, L, H), _div=_diverged(f))
    keys = varying_axes(f, axes) + ["lambda"]
    rows = []
    for k, g in _groups(f, keys):
        rec = dict(zip(keys, k))
        has_origin = g["origin"].notna() if "origin" in g else pd.Series(False, index=g.index)
        if has_origin.any():
            # Runs from checkpoints define the sides here; fresh runs at the same λ (e.g. the
            # runs that made those checkpoints) would blur a gap measured between branches.
            g = g[has_origin]
            has_origin = has_origin[has_origin]
        e_h = g.loc[g["_side"].eq("H"), "test_error"]
        e_l = g.loc[g["_side"].eq("L"), "test_error"]
        basis = "origin" if has_origin.any() else "branch"
        rec.update(n_L=int(e_l.notna().sum()), n_H=int(e_h.notna().sum()), mean_L=e_l.mean(),
                   mean_H=e_h.mean(), basis=basis, n_diverged=int(g["_div"].sum()),
                   n_missing=int((g["test_error"].isna() & ~g["_div"]).sum()))
        rec["gap"] = rec["mean_H"] - rec["mean_L"]
        diffs = np.array([])
        if has_origin.any() and pair_on in g:
            o = g[has_origin & g["test_error"].notna()]
            piv = o.pivot_table(index=pair_on, columns="origin", values="test_error", aggfunc="mean")
            if {"ordered", "collapse"} <= set(piv.columns):
                diffs = (piv["collapse"] - piv["ordered"]).dropna().to_numpy()
        rec.update(n_pairs=len(diffs),
                   paired_gap_mean=diffs.mean() if len(diffs) else np.nan,
                   paired_gap_std=diffs.std(ddof=ddof) if len(diffs) > ddof else np.nan,
                   paired_gap_max=diffs.max() if len(diffs) else np.nan)
        rows.append(rec)
    cols = keys + ["n_L", "n_H", "mean_L", "mean_H", "gap", "basis", "n_diverged", "n_missing", "n_pairs",
                   "paired_gap_mean", "paired_gap_std", "paired_gap_max"]
    return _with_unplaced(_sort(pd.DataFrame(rows, columns=cols), keys), unplaced, left_decided)


# --------------------------------------------------------------------------------------------------
# hysteresis
# --------------------------------------------------------------------------------------------------

def _h_leg(g: pd.DataFrame) -> str:
    """Which leg of a loop is the H branch: the leg whose runs started from collapse checkpoints
    (Tα: down from collapse, up from ordered), else the up leg (R1/R2: the paper's H(λ↑), L(λ↓))."""
    o = g.dropna(subset=["origin"]) if "origin" in g else g.iloc[:0]
    if o.empty:
        return "up"
    by_leg = o.groupby(o["direction"].astype(object))["origin"].agg(lambda x: set(x.astype(object))).to_dict()
    return "down" if by_leg.get("down") == {"collapse"} or by_leg.get("up") == {"ordered"} else "up"


def hysteresis_table(df: pd.DataFrame, *, axes: Iterable[str] = DEFAULT_AXES,
                     exclude_phases: Sequence[str] = ("init",), ddof: int = 1) -> pd.DataFrame:
    """Up and down branches side by side per λ (R1/R2 loops, Tα sweeps).

    Each run contributes the last evaluation of each λ step of each leg (``direction``). Returns per
    λ (and varying axis): ``n_up``, ``up`` (mean error going up), ``up_std``, ``n_down``, ``down``,
    ``down_std`` (``ddof``), ``H_leg`` (the leg on the H branch), ``gap`` = H-leg − L-leg (the
    paper's convention, positive when the branches are in the paper's order, as in
    :func:`gap_table`), ``up_minus_down`` (the signed difference of the legs), ``n_diverged`` and
    ``n_missing`` (steps without an error that did not diverge).

    The H leg is the one whose runs started from collapse checkpoints (a Tα sweep goes down from a
    collapsed checkpoint and up from an ordered one), else the up leg: the R1 archive gives the
    paper's H(λ↑)/L(λ↓)/gap table (note its λ↑ at 0.22 is taken after only 2 global epochs).
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    d = _drop_phases(df, exclude_phases)
    d = d[d["direction"].isin(["up", "down"])]
    f, unplaced = _placed(final_rows(d, ["run", "lambda", "direction"]))
    keys = varying_axes(f, axes) + ["lambda"]
    h_leg = _h_leg(f)
    rows = []
    for k, g in _groups(f, keys):
        rec = dict(zip(keys, k))
        for leg in ("up", "down"):
            e = g.loc[g["direction"].eq(leg), "test_error"]
            rec[f"n_{leg}"] = int(e.notna().sum())
            rec[leg] = e.mean()
            rec[f"{leg}_std"] = e.std(ddof=ddof) if e.notna().sum() > ddof else np.nan
        l_leg = "down" if h_leg == "up" else "up"
        rec.update(H_leg=h_leg, gap=rec[h_leg] - rec[l_leg], up_minus_down=rec["up"] - rec["down"],
                   **_diverged_and_missing(g))
        rows.append(rec)
    cols = keys + ["n_up", "up", "up_std", "n_down", "down", "down_std", "H_leg", "gap",
                   "up_minus_down", "n_diverged", "n_missing"]
    return _with_unplaced(_sort(pd.DataFrame(rows, columns=cols), keys), unplaced, left_decided)


# --------------------------------------------------------------------------------------------------
# spinodal
# --------------------------------------------------------------------------------------------------

def spinodal_points(df: pd.DataFrame, *, up: float = SPINODAL_UP, down: float = SPINODAL_DOWN,
                    consecutive: int = SPINODAL_RUN, inclusive: bool = False,
                    axes: Iterable[str] = DEFAULT_AXES,
                    require_init_success: bool = True) -> pd.DataFrame:
    """Spinodal λ of each ladder leg (paper rule: λ at the ``consecutive``-th consecutive step whose
    error is > ``up`` going up, < ``down`` going down; ``inclusive=True`` gives ≥/≤, the T1/T2 rule).

    Steps are the last evaluation of each λ in visiting order; ``init`` rows are ignored. A leg that
    never crosses is censored at the ladder's end: ``ladder_end`` when the frame has it (the
    planned end, R3 configs), else the last λ the run reached. A diverged step (error NaN) breaks a
    run of crossings; the leg is flagged ``diverged``. Returns one row per (run, direction) with the
    axes, ``seed``, ``spinodal_lambda``, ``censored``, ``n_steps``, ``diverged``, ``excluded``
    (a leg with no ladder step, ``spinodal_lambda`` NaN, or, with ``require_init_success``, a leg
    whose run's ``init_success`` is False: counted, not averaged).
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    every_leg = df[df["direction"].isin(["up", "down"])]
    d = _drop_phases(df, ("init",))
    d = d[d["direction"].isin(["up", "down"]) & ~d["status"].astype(object).eq("no_evaluation")] \
        if "status" in d else d[d["direction"].isin(["up", "down"])]
    steps = final_rows(d, ["run", "direction", "lambda"])
    # T1/T2 archives flag a failed init (init_success False): its ladder starts from the wrong branch
    init_failed = set(df.loc[df["init_success"].eq(False), "run"]) if "init_success" in df else set()
    unfinished = set(df.loc[not_final(df), "run"])     # a ladder still climbing has no spinodal yet
    steps = steps.assign(_ep=steps["epoch"].fillna(-1)).sort_values(["run", "_ep"], kind="stable")
    ax = [a for a in axes if a in d.columns]
    rows = []
    for (run, leg), g in steps.groupby(["run", "direction"], sort=True, observed=True):
        e = g["test_error"].to_numpy(dtype=float)
        lam = g["lambda"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            if leg == "up":
                hit = e >= up if inclusive else e > up
            else:
                hit = e <= down if inclusive else e < down
        count, at = 0, None
        for i, h in enumerate(hit):
            count = count + 1 if h else 0
            if count >= consecutive:
                at = i
                break
        end = g["ladder_end"].dropna() if "ladder_end" in g else pd.Series(dtype=float)
        rec = {a: g[a].iloc[0] for a in ax}
        rec.update(run=run, direction=leg, seed=g["seed"].iloc[0] if "seed" in g else None,
                   spinodal_lambda=lam[at] if at is not None else
                   (float(end.iloc[0]) if len(end) else lam[-1]),
                   censored=at is None, n_steps=len(g), diverged=bool(_diverged(g).any()),
                   excluded=bool(require_init_success and run in init_failed) or run in unfinished)
        rows.append(rec)
    seen = {(r["run"], r["direction"]) for r in rows}
    for (run, leg), g in every_leg.groupby(["run", "direction"], sort=True, observed=True):
        if (run, leg) not in seen:  # a leg that never climbed (failed init): counted, not measured
            rec = {a: g[a].iloc[0] for a in ax}
            rec.update(run=run, direction=leg, seed=g["seed"].iloc[0] if "seed" in g else None,
                       spinodal_lambda=np.nan, censored=False, n_steps=0, diverged=False,
                       excluded=True)
            rows.append(rec)
    out = pd.DataFrame(rows, columns=ax + ["run", "direction", "seed", "spinodal_lambda",
                                           "censored", "n_steps", "diverged", "excluded"])
    return _noting_decided(out, left_decided)


def spinodal_table(df: pd.DataFrame, *, up: float = SPINODAL_UP, down: float = SPINODAL_DOWN,
                   consecutive: int = SPINODAL_RUN, inclusive: bool = False, ddof: int = 0,
                   axes: Iterable[str] = DEFAULT_AXES,
                   require_init_success: bool = True) -> pd.DataFrame:
    """Spinodal summary per η, hold and direction (R3, T1/T2): mean and std (``ddof``; 0 = the
    population SD of the paper's published R3 table) of the per-run spinodal λ
    (:func:`spinodal_points`, censored runs at the ladder's end), ``n`` (legs measured),
    ``n_censored``, ``n_diverged``, ``n_excluded`` (legs without ladder steps, not in ``n``),
    ``all_censored``, and the coexistence width = mean λ↑ − mean λ↓ of the same η/hold cell (NaN
    when one direction is missing) with ``width_censored`` = True when it rests on a direction
    whose legs are all censored (a bound, not a measurement; the paper's λ↓ = 0.200 is one).
    """
    pts = spinodal_points(df, up=up, down=down, consecutive=consecutive, inclusive=inclusive,
                          axes=axes, require_init_success=require_init_success)
    cell = [a for a in ("eta", "hold") if a in pts] + [
        a for a in varying_axes(pts, axes) if a not in ("eta", "hold")]
    keys = cell + ["direction"]
    rows = []
    for k, g in _groups(pts, keys):
        kept = g[~g["excluded"].astype(bool)]
        s = kept["spinodal_lambda"].astype(float)
        rec = dict(zip(keys, k))
        rec.update(lambda_mean=s.mean(), lambda_std=s.std(ddof=ddof) if len(s) > ddof else np.nan,
                   n=len(kept), n_censored=int(kept["censored"].sum()),
                   n_diverged=int(kept["diverged"].sum()), n_excluded=int(len(g) - len(kept)),
                   all_censored=bool(len(kept)) and bool(kept["censored"].all()))
        rows.append(rec)
    out = pd.DataFrame(rows, columns=keys + ["lambda_mean", "lambda_std", "n", "n_censored",
                                             "n_diverged", "n_excluded", "all_censored"])
    width, width_censored = [], []
    for _, r in out.iterrows():
        same = np.ones(len(out), dtype=bool)
        for c in cell:
            same &= (out[c].eq(r[c]) | (out[c].isna() & pd.isna(r[c]))).to_numpy()
        u = out.loc[same & out["direction"].eq("up").to_numpy(), "lambda_mean"]
        dn = out.loc[same & out["direction"].eq("down").to_numpy(), "lambda_mean"]
        both = len(u) and len(dn)
        width.append(u.iloc[0] - dn.iloc[0] if both else np.nan)
        width_censored.append(bool(both) and bool(out.loc[same, "all_censored"].any()))
    out["coexistence_width"] = width
    out["width_censored"] = width_censored
    return _sort(out, keys)


# --------------------------------------------------------------------------------------------------
# survival
# --------------------------------------------------------------------------------------------------

def survival_runs(df: pd.DataFrame, *, threshold: float = DEATH_MIN, consecutive: int = DEATH_RUN,
                  phase: str | None = "observe", axes: Iterable[str] = DEFAULT_AXES,
                  require_init_success: bool = True) -> pd.DataFrame:
    """Lifetime of each run (T1a/T13 rule): it dies at the first run of ``consecutive`` evaluations
    with error >= ``threshold``; lifetime = time of the last of them − (consecutive − 1). Times are
    epochs since the observation phase began (epoch − the run's last epoch before it). A run that
    never dies is censored at its last observed time. A diverged run dies at its first NaN
    evaluation (flag ``diverged``). Runs whose ``init_success`` is False (when
    ``require_init_success``; PROTOCOLS: the init must reach error <= 0.30) and runs with no
    observation at all (a failed init observed nothing) are kept as rows flagged ``excluded``, with
    the reason in ``exclusion`` ("init failed" / "no observation"), so that tables count them (the
    archive readers give such a run one ``observe`` row with status ``no_evaluation``). A run with
    no row at all in ``phase`` is a preparation run of a chained sweep and is not a lifetime run.

    Uses the rows of ``phase`` when the frame has any, else every non-init row. Returns one row per
    run: axes, ``lambda``, ``seed``, ``time`` (lifetime or censoring time), ``died``, ``diverged``,
    ``excluded``, ``exclusion``, ``final_error`` (last evaluation).
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    d = df
    use_phase = phase is not None and "phase" in d and d["phase"].eq(phase).any()
    ax = [a for a in axes if a in d.columns]
    unevaluated = d["status"].astype(object).eq("no_evaluation") if "status" in d else \
        pd.Series(False, index=d.index)
    rows = []
    for run, g in d.groupby("run", sort=True):
        g = g.sort_values("epoch", kind="stable", na_position="first")
        if use_phase and not g["phase"].eq(phase).any():
            continue  # a preparation run of a chained sweep, not a lifetime run (its kids are)
        obs = g[g["phase"].eq(phase)] if use_phase else _drop_phases(g, ("init",))
        obs = obs[~unevaluated.loc[obs.index]]
        init_failed = bool("init_success" in g and g["init_success"].eq(False).any())
        excluded = "init failed" if require_init_success and init_failed else \
            "unfinished" if not_final(g).any() else "no observation" if obs.empty else None
        # a run that observed nothing still belongs to its target λ (not the init's λ)
        src = obs if len(obs) else g[~g["phase"].eq("init")] if "phase" in g else g
        src = src if len(src) else g
        lam = src["lambda"].dropna()
        rec = {a: src[a].iloc[-1] for a in ax}
        rec.update(run=run, **{"lambda": lam.iloc[-1] if len(lam) else np.nan},
                   seed=g["seed"].iloc[0] if "seed" in g else None, time=np.nan, died=False,
                   diverged=False, excluded=excluded is not None, exclusion=excluded,
                   final_error=np.nan)
        if obs.empty:  # a run that observed nothing (failed init) is counted, not timed
            rows.append(rec)
            continue
        before = g.loc[g.index.difference(obs.index), "epoch"]
        t0 = before.max() if before.notna().any() else 0.0
        t = (obs["epoch"] - t0).to_numpy(dtype=float)
        if np.isnan(t).all():
            t = np.arange(1, len(obs) + 1, dtype=float)
        e = obs["test_error"].to_numpy(dtype=float)
        div_rows = _diverged(obs).to_numpy() | np.isnan(e)
        died, diverged, time, count = False, False, t[-1], 0
        for i in range(len(e)):
            if div_rows[i]:
                died, diverged, time = True, True, t[i]
                break
            count = count + 1 if e[i] >= threshold else 0
            if count >= consecutive:
                died, time = True, t[i] - (consecutive - 1)
                break
        rec.update(time=time, died=died, diverged=diverged,
                   final_error=obs["test_error"].dropna().iloc[-1] if obs["test_error"].notna().any()
                   else np.nan)
        rows.append(rec)
    out = pd.DataFrame(rows, columns=ax + ["run", "lambda", "seed", "time", "died", "diverged",
                                           "excluded", "exclusion", "final_error"])
    return _noting_decided(out, left_decided)


def survival_table(df: pd.DataFrame, *, threshold: float = DEATH_MIN,
                   consecutive: int = DEATH_RUN, phase: str | None = "observe",
                   axes: Iterable[str] = DEFAULT_AXES, require_init_success: bool = True,
                   ddof: int = 1) -> pd.DataFrame:
    """Survival per λ (T1a/T13): ``n`` (runs kept), ``survived``, ``died``, ``survival_fraction``,
    ``lifetime_mean``/``lifetime_min`` of the dead, ``n_diverged`` (counted among the dead),
    ``n_excluded`` (not in ``n``: failed init or nothing observed, also split as ``n_init_failed``
    and ``n_not_observed``), ``final_error_mean``/``final_error_std`` (``ddof``; 1 by default,
    pandas' and the T1a/T13 notebooks') of the kept runs. The Kaplan–Meier curve is
    :func:`km_curve`.
    """
    r = survival_runs(df, threshold=threshold, consecutive=consecutive, phase=phase, axes=axes,
                      require_init_success=require_init_success)
    keys = varying_axes(r, axes) + ["lambda"]
    rows = []
    for k, g in _groups(r, keys):
        kept = g[~g["excluded"]]
        dead = kept[kept["died"]]
        n = len(kept)
        rec = dict(zip(keys, k))
        rec.update(n=n, survived=int((~kept["died"]).sum()), died=len(dead),
                   survival_fraction=(~kept["died"]).mean() if n else np.nan,
                   lifetime_mean=dead["time"].mean() if len(dead) else np.nan,
                   lifetime_min=dead["time"].min() if len(dead) else np.nan,
                   n_diverged=int(kept["diverged"].sum()), n_excluded=int(g["excluded"].sum()),
                   n_init_failed=int(g["exclusion"].eq("init failed").sum()),
                   n_not_observed=int(g["exclusion"].eq("no observation").sum()),
                   n_unfinished=int(g["exclusion"].eq("unfinished").sum()),
                   final_error_mean=kept["final_error"].mean(),
                   final_error_std=kept["final_error"].std(ddof=ddof)
                   if kept["final_error"].notna().sum() > ddof else np.nan)
        rows.append(rec)
    return _sort(pd.DataFrame(rows), keys)


def km_curve(df: pd.DataFrame, **kw) -> pd.DataFrame:
    """Kaplan–Meier survival curve per λ (and varying axis) as a frame with columns ``time`` and
    ``survival`` (a step function starting at (0, 1)), using scipy.stats.ecdf on censored data.
    Keyword arguments go to :func:`survival_runs`.
    """
    r = survival_runs(df, **kw)
    r = r[~r["excluded"]]
    keys = varying_axes(r, kw.get("axes", DEFAULT_AXES)) + ["lambda"]
    parts = []
    for k, g in _groups(r, keys):
        dead = g.loc[g["died"], "time"].to_numpy(dtype=float)
        alive = g.loc[~g["died"], "time"].to_numpy(dtype=float)
        if len(dead):
            res = stats.ecdf(stats.CensoredData(uncensored=dead, right=alive))
            t = np.concatenate([[0.0], res.sf.quantiles])
            s = np.concatenate([[1.0], res.sf.probabilities])
        else:  # nobody died: the curve stays at 1 up to the longest observation
            t = np.array([0.0, float(np.nanmax(alive)) if len(alive) else 0.0])
            s = np.array([1.0, 1.0])
        part = pd.DataFrame({"time": t, "survival": s})
        for key, v in zip(keys, k):
            part.insert(0, key, v)
        parts.append(part)
    cols = keys + ["time", "survival"]
    return pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)


# --------------------------------------------------------------------------------------------------
# critical slowing and trap escape
# --------------------------------------------------------------------------------------------------

from ..paper import CONVERGED_BELOW, ESCAPE_BELOW  # noqa: E402,F401
# Names the archive gives a run's own "first epoch below the threshold" when it kept no history.
CONVERGENCE_COLUMNS = ("convergence_epoch", "first_epoch_below", "epochs_to_converge", "conv_epoch")


def convergence_table(df: pd.DataFrame, *, threshold: float = CONVERGED_BELOW,
                      axes: Iterable[str] = DEFAULT_AXES, column: str | None = None,
                      exclude_phases: Sequence[str] = ("init",)) -> pd.DataFrame:
    """Critical slowing (exp K): the first epoch at which each run's error is < ``threshold``.

    From each run's history (its evaluations, ``init`` phase left out); a run with a single
    evaluation has no history, so its own convergence column is used where the archive kept one
    (``column``, else the first of :data:`CONVERGENCE_COLUMNS` present), and otherwise it is counted
    in ``n_no_history``, not guessed. Per λ (and varying axis): ``n`` (runs), ``n_converged``,
    ``mean``, ``min``, ``max`` of the first epoch of the converged runs, ``n_no_history``,
    ``n_diverged``, ``n_missing`` (runs not ended: unfinished, errored or never started, not timed).
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    d = _drop_phases(df, exclude_phases)
    col = column or next((c for c in CONVERGENCE_COLUMNS if c in d.columns), None)
    ax = varying_axes(d, axes)
    per_run = []
    for run, g in d.groupby("run", sort=True, observed=True):
        g = g.sort_values("epoch", kind="stable")
        evals = g[g["test_error"].notna()]
        first, history = np.nan, len(evals) > 1
        if history:
            below = evals.loc[evals["test_error"] < threshold, "epoch"]
            first = float(below.iloc[0]) if len(below) else np.nan
        elif col is not None and g[col].notna().any():
            history, first = True, float(pd.to_numeric(g[col], errors="coerce").dropna().iloc[0])
        missing = bool(not_final(g).any())     # not ended: its first epoch below may still come
        if missing:
            first, history = np.nan, True
        rec = {a: g[a].iloc[-1] for a in ax}
        rec.update(run=run, **{"lambda": g["lambda"].iloc[-1]}, first=first, history=history,
                   diverged=bool(_diverged(g).any()), missing=missing)
        per_run.append(rec)
    r = pd.DataFrame(per_run, columns=ax + ["run", "lambda", "first", "history", "diverged", "missing"])
    r, unplaced = _placed(r)
    keys = ax + ["lambda"]
    rows = []
    for k, g in _groups(r, keys):
        conv = g.loc[g["history"] & g["first"].notna() & ~g["missing"].astype(bool), "first"]
        rec = dict(zip(keys, k))
        rec.update(n=len(g), n_converged=len(conv), mean=conv.mean(), min=conv.min(),
                   max=conv.max(), n_no_history=int((~g["history"].astype(bool)).sum()),
                   n_diverged=int(g["diverged"].sum()), n_missing=int(g["missing"].sum()))
        rows.append(rec)
    return _with_unplaced(_sort(pd.DataFrame(rows, columns=keys + [
        "n", "n_converged", "mean", "min", "max", "n_no_history", "n_diverged", "n_missing"]), keys), unplaced,
        left_decided)


def escape_table(df: pd.DataFrame, *, escape_below: float = ESCAPE_BELOW,
                 by: Sequence[str] = ("intervention", "lambda", "lr_multiplier"),
                 phase: str | None = "intervention",
                 axes: Iterable[str] = DEFAULT_AXES) -> pd.DataFrame:
    """Trap escape (Tδ): per intervention (λ × LR multiplier, and its name where the archive gives
    one), ``n`` runs, ``escaped`` (final error < ``escape_below``), ``escape_fraction``,
    ``final_error_mean``, ``final_error_min``, ``n_missing`` (no final error: not evaluated),
    ``n_diverged`` (a diverged run has not escaped).

    Uses the rows of ``phase`` when the frame has any (a trap sweep also holds the runs that made
    the trapped checkpoints), else every non-init row.
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    d = df[df["phase"].eq(phase)] if phase is not None and "phase" in df and df["phase"].eq(phase).any() \
        else _drop_phases(df, ("init",))
    f = final_rows(d, ["run"])
    keys = varying_axes(f, axes) + [c for c in by if c in f.columns]
    rows = []
    for k, g in _groups(f, keys):
        e = pd.to_numeric(g["test_error"], errors="coerce")
        rec = dict(zip(keys, k))
        rec.update(n=len(g), escaped=int((e < escape_below).sum()),
                   escape_fraction=float((e < escape_below).mean()) if len(g) else np.nan,
                   final_error_mean=e.mean(), final_error_min=e.min(), **_diverged_and_missing(g, e))
        rows.append(rec)
    return _noting_decided(_sort(pd.DataFrame(rows, columns=keys + ["n", "escaped", "escape_fraction",
                                                    "final_error_mean", "final_error_min",
                                                    "n_missing", "n_diverged"]), keys), left_decided)

# --------------------------------------------------------------------------------------------------
# critical point and bimodality
# --------------------------------------------------------------------------------------------------

def _estimates(lam: np.ndarray, err: np.ndarray, H: float,
               ddof: int = 1, high: np.ndarray | None = None) -> tuple[float, float, float]:
    """(λ at the std peak, logistic λ_c, logistic width) from per-run final errors.

    ``high`` (default: err >= H) is each run's H outcome for the logistic fit; runs decided early
    have one but no final error (err NaN) and stay out of the std."""
    high = err >= H if high is None else high
    levels, inv, n = np.unique(lam, return_inverse=True, return_counts=True)
    std = []
    for i in range(len(levels)):
        e = err[(inv == i) & np.isfinite(err)]
        std.append(np.std(e, ddof=ddof) if len(e) > max(ddof, 1) else np.nan)
    std = np.array(std)
    peak = levels[np.nanargmax(std)] if np.isfinite(std).any() else np.nan
    n_high = np.bincount(inv, weights=high.astype(float), minlength=len(levels))
    lambda_c, w = fit_logistic(levels, n_high, n)
    return float(peak), lambda_c, w


MIN_MIXED_FOR_WIDTH = 2   # a logistic width needs >= 2 λ where both L and H runs occur


def _n_mixed(lam: np.ndarray, err: np.ndarray, H: float, high: np.ndarray | None = None) -> int:
    """How many λ have both runs below and at or above ``H`` (0 < H fraction < 1); ``high`` as in
    :func:`_estimates`."""
    levels, inv = np.unique(lam, return_inverse=True)
    high = np.bincount(inv, weights=(err >= H if high is None else high).astype(float), minlength=len(levels))
    n = np.bincount(inv, minlength=len(levels))
    return int(((high > 0) & (high < n)).sum())


def width_identifiability(n_mixed: int) -> str:
    """Why the logistic width cannot be estimated from a sweep with ``n_mixed`` mixed λ ('' if it can).

    With one mixed λ (or none), any width below the grid step fits the data about as well: the fit
    runs to its lower bound (1/20 of the step), a number that says nothing about the transition."""
    if n_mixed >= MIN_MIXED_FOR_WIDTH:
        return ""
    return f"not identifiable: {n_mixed} mixed λ (needs >= {MIN_MIXED_FOR_WIDTH})"


def final_errors_for_fit(df: pd.DataFrame, axes: Iterable[str] = DEFAULT_AXES):
    """(per-run final rows with ``_e``, the varying axes, the runs that cannot be placed).

    ``_e`` is the final error with diverged runs as 1.0 (a diverged model has lost the task);
    runs without a final error (never evaluated, unfinished) or without λ are returned apart."""
    f = final_rows(df, ["run"])
    f = f.assign(_e=f["test_error"].where(~_diverged(f), 1.0))
    keys = varying_axes(f, axes)
    missing = f[f["_e"].isna() | f["lambda"].isna()]
    return f.dropna(subset=["_e", "lambda"]), keys, missing


def outcomes_for_fit(df: pd.DataFrame, H: float = H_MIN, axes: Iterable[str] = DEFAULT_AXES):
    """:func:`final_errors_for_fit` with the runs decided early (``--decide-early``) added: ``_high`` is
    each run's H outcome (final error >= ``H``, diverged counted H; a decided run's branch) and ``_e``
    its final error (NaN for a decided run: it enters the logistic fit, never the std of errors)."""
    f, keys, missing = final_errors_for_fit(df, axes)
    f = f.assign(_high=f["_e"] >= H)
    early = outcome_rows(df)
    early = early[early["decided"] & early["lambda"].notna()]
    if len(early):
        keys = varying_axes(pd.concat([f, early], sort=False), axes)
        f = pd.concat([f, early.assign(_e=np.nan, _high=early["outcome"].astype(str).ne("not_H"))],
                      ignore_index=True, sort=False)
    return f, keys, missing


def bootstrap_estimates(lam: np.ndarray, err: np.ndarray, H: float, ddof: int, n_boot: int,
                        rng: np.random.Generator, high: np.ndarray | None = None) -> np.ndarray:
    """``n_boot`` × 3 draws of :func:`_estimates` (std peak, λ_c, width), resampling runs within λ."""
    high = err >= H if high is None else high
    boots = [_estimates(lam[idx], err[idx], H, ddof, high[idx]) for idx in resample_within_levels(lam, n_boot, rng)]
    return np.array(boots) if boots else np.full((0, 3), np.nan)


def percentile_ci(draws: np.ndarray, ci: float = 0.95) -> tuple[float, float]:
    """The percentile interval of the finite draws (NaN, NaN when there are none)."""
    draws = np.asarray(draws, dtype=float)
    draws = draws[np.isfinite(draws)]
    if not len(draws):
        return np.nan, np.nan
    a = (1 - ci) / 2
    lo, hi = np.quantile(draws, [a, 1 - a])
    return float(lo), float(hi)


def critical_point(df: pd.DataFrame, *, H: float = H_MIN, n_boot: int = 500, ci: float = 0.95,
                   ddof: int = 1, seed: int = 0,
                   axes: Iterable[str] = DEFAULT_AXES) -> pd.DataFrame:
    """Critical λ_c two ways (paper: argmax over λ of the std of final error, ``ddof`` 1 as in
    PROTOCOLS.md, where λ with unequal run counts can move the peak; and the λ where a
    logistic fit of the H fraction, error >= ``H``, crosses 1/2 — a binomial maximum-likelihood
    fit, see :func:`dgl_ray.boundary.fit_logistic`, the adaptive searcher's fit), with percentile bootstrap
    confidence intervals from resampling runs within each λ (``n_boot`` draws, RNG ``seed``).

    Uses each run's final error; diverged runs count as H (a diverged model has lost the task).
    Returns one row per varying-axis cell: ``lambda_c_var``, ``var_ci_low``, ``var_ci_high``,
    ``lambda_c_logistic``, ``logistic_width``, ``logistic_ci_low``, ``logistic_ci_high``,
    ``width_ci_low``, ``width_ci_high``, ``n_mixed`` (λ with both L and H runs),
    ``width_identifiable`` and ``width_note`` (with fewer than 2 mixed λ the width is NaN and the
    note says why: the fit would only return its lower bound), ``n_runs``, ``n_lambda``,
    ``n_missing`` (runs of the cell without a final error or λ, not used), ``n_decided`` (runs decided
    early, ``--decide-early``: their branch counts in the logistic fit and its bootstrap, never in the
    std of final errors; ``n_runs`` includes them).
    """
    f, keys, missing = outcomes_for_fit(df, H, axes)
    rng = np.random.default_rng(seed)
    rows = []
    for k, g in _groups(f, keys):
        lam = g["lambda"].to_numpy(dtype=float)
        err = g["_e"].to_numpy(dtype=float)
        high = g["_high"].to_numpy(dtype=bool)
        peak, x0, w = _estimates(lam, err, H, ddof, high)
        b = bootstrap_estimates(lam, err, H, ddof, n_boot, rng, high)
        (vl, vh), (ll, lh) = percentile_ci(b[:, 0], ci), percentile_ci(b[:, 1], ci)
        n_mixed = _n_mixed(lam, err, H, high)
        note = width_identifiability(n_mixed)
        wl, wh = percentile_ci(b[:, 2], ci) if not note else (np.nan, np.nan)
        rec = dict(zip(keys, k))
        rec.update(lambda_c_var=peak, var_ci_low=vl, var_ci_high=vh, lambda_c_logistic=x0,
                   logistic_width=w if not note else np.nan, logistic_ci_low=ll,
                   logistic_ci_high=lh, width_ci_low=wl, width_ci_high=wh, n_mixed=n_mixed,
                   width_identifiable=not note, width_note=note, n_runs=len(g),
                   n_lambda=len(np.unique(lam)), n_missing=_count_cell(missing, keys, k),
                   n_decided=int(np.isnan(err).sum()))
        rows.append(rec)
    return pd.DataFrame(rows)


def sarle_coefficient(x: Sequence[float]) -> float:
    """Sarle's bimodality coefficient b = (g² + 1) / (k + 3(n−1)²/((n−2)(n−3))) with the
    sample-size-corrected skewness g and excess kurtosis k; b > 5/9 ≈ 0.555 suggests bimodality."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n < 4 or np.ptp(x) == 0:
        return float("nan")
    g = stats.skew(x, bias=False)
    k = stats.kurtosis(x, fisher=True, bias=False)
    return float((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def bimodality(df: pd.DataFrame, *, alpha: float = 0.05,
               axes: Iterable[str] = DEFAULT_AXES) -> pd.DataFrame:
    """Bimodality of final errors per λ (and varying axis): Hartigan's dip statistic and p-value
    (``diptest`` package, table interpolation), ``bimodal`` = p < ``alpha`` (the paper's rule), and
    Sarle's coefficient with ``sarle_bimodal`` = b > 5/9. Columns: ``n``, ``dip``, ``dip_p``,
    ``bimodal``, ``sarle``, ``sarle_bimodal``, ``n_diverged`` and ``n_missing`` (runs without a
    final error: not in the test, counted in ``n``).
    """
    df, left_decided = _without_decided(df)     # no final error, no whole history
    import diptest  # imported here so that the rest of the package works without it

    f, unplaced = _placed(final_rows(df, ["run"]))
    keys = varying_axes(f, axes) + ["lambda"]
    rows = []
    for k, g in _groups(f, keys):
        x = g["test_error"].dropna().to_numpy(dtype=float)
        rec = dict(zip(keys, k))
        if len(x) >= 4 and np.ptp(x) > 0:
            dip, p = diptest.diptest(x)
        else:
            dip, p = np.nan, np.nan
        b = sarle_coefficient(x)
        rec.update(n=len(g), dip=dip, dip_p=p, bimodal=bool(p < alpha) if np.isfinite(p) else False,
                   sarle=b, sarle_bimodal=bool(b > 5 / 9) if np.isfinite(b) else False,
                   **_diverged_and_missing(g))
        rows.append(rec)
    return _with_unplaced(_sort(pd.DataFrame(rows), keys), unplaced, left_decided)
