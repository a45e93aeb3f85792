"""``report --compare PATH``: another result set (the paper's archive or another sweep) beside the new runs.

:func:`append_comparison` adds a "Comparison" section to a written :class:`~dgl_ray.analysis.report.Report`:
for every kind of reduction that has data on both sides (fresh runs, hysteresis ladders, survival
runs), each table computed on both with a ``source`` column first, and each figure drawn for both
side by side (:func:`dgl_ray.analysis.figures.side_by_side`). Fresh runs on both sides first get
one axis with P(H | λ) of both and their Wilson CIs, and λ_c of each with its CI and the difference
(:func:`lambda_c_comparison`). This is the S1 notebook's comparison of
new runs with the archive, from the command line.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..paper import H_MIN
from ..storage import Location
from . import figures as F
from . import tables as T
from .frames import is_sweep_path, load_experiment, load_legacy
from .report import to_markdown


def _kinds(d: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The parts of ``d`` each reduction uses (fresh runs, both-leg ladders, observed runs)."""
    out = {}
    observe = set(d.loc[d["phase"].eq("observe"), "run"]) if "phase" in d else set()
    no_dir = d["direction"].isna() if "direction" in d else pd.Series(True, index=d.index)
    no_origin = d["origin"].isna() if "origin" in d else pd.Series(True, index=d.index)
    fresh = d[no_dir & no_origin & ~d["run"].isin(observe)]
    if len(fresh):
        out["fresh"] = fresh
    if "direction" in d and set(d["direction"].dropna()) >= {"up", "down"}:
        out["hysteresis"] = d[d["direction"].isin(["up", "down"])]
    if observe:
        out["survival"] = d[d["run"].isin(observe)]
    return out


def _has_trajectories(d: pd.DataFrame) -> bool:
    return bool(len(d)) and d.groupby("run")["epoch"].nunique().max() >= 2


# kind -> (tables, figures); a figure entry may carry a condition on both frames
TABLES = {
    "fresh": [("branch_table", T.branch_table), ("gap_table", T.gap_table)],
    "hysteresis": [("hysteresis_table", T.hysteresis_table)],
    "survival": [("survival_table", T.survival_table)],
}
FIGURES = {
    "fresh": [("coexistence_map", F.coexistence_map, None),
              ("error_histograms", F.error_histograms, None),
              ("error_trajectories", F.error_trajectories, _has_trajectories),
              ("phase_diagram", F.phase_diagram, lambda d: d["eta"].nunique() > 1)],
    "hysteresis": [("hysteresis_loop", F.hysteresis_loop, None)],
    "survival": [("survival_curves", F.survival_curves, None)],
}


def lambda_c_comparison(frames: dict, *, n_boot: int = 200, ci: float = 0.95, seed: int = 0,
                        H: float = H_MIN) -> pd.DataFrame:
    """λ_c of each source ({label: frame of fresh runs}, each pooled over its cells) from the logistic
    fit of its H fraction with a percentile bootstrap CI (:func:`critical_point`), and a last row
    with the difference (first − second) and its CI from the same draws, paired draw by draw
    (each source resampled within λ on its own)."""
    rows, draws = [], []
    for i, (label, d) in enumerate(frames.items()):
        cp = T.critical_point(d, H=H, n_boot=n_boot, ci=ci, seed=seed + i, axes=())
        f, _, _ = T.outcomes_for_fit(d, H, axes=())       # decided runs by their branch, as critical_point
        lam, err, high = f["lambda"].to_numpy(float), f["_e"].to_numpy(float), f["_high"].to_numpy(bool)
        draws.append(T.bootstrap_estimates(lam, err, H, 1, n_boot, np.random.default_rng(seed + i), high)[:, 1]
                     if len(f) else np.full(n_boot, np.nan))
        r = cp.iloc[0] if len(cp) else pd.Series(dtype=object)
        rows.append(dict(source=label, lambda_c=r.get("lambda_c_logistic", np.nan),
                         ci_low=r.get("logistic_ci_low", np.nan), ci_high=r.get("logistic_ci_high", np.nan),
                         width=r.get("logistic_width", np.nan), n_runs=r.get("n_runs", 0),
                         n_lambda=r.get("n_lambda", 0), n_mixed=r.get("n_mixed", 0),
                         note=r.get("width_note", "no runs with a final error")))
    if len(rows) == 2:
        a, b = rows
        lo, hi = T.percentile_ci(draws[0] - draws[1], ci) if n_boot else (np.nan, np.nan)
        rows.append(dict(source=f"difference ({a['source']} − {b['source']})",
                         lambda_c=a["lambda_c"] - b["lambda_c"], ci_low=lo, ci_high=hi,
                         note="CI: percentile of the paired bootstrap differences"
                         + ("; it excludes 0" if lo > 0 or hi < 0 else "; it includes 0")
                         if np.isfinite(lo) else "no CI (a side has no bootstrap fit)"))
    out = pd.DataFrame(rows)
    return out.astype({c: "Int64" for c in ("n_runs", "n_lambda", "n_mixed")})   # counts stay integers


def comparison(df: pd.DataFrame, other: pd.DataFrame, labels: tuple[str, str], n_boot: int = 200):
    """Yield (kind, name, table or None, figure or None) for every reduction both sides have data for;
    fresh runs first get P(H | λ) of both on one axis with each λ_c (:func:`lambda_c_comparison`)."""
    a, b = _kinds(df), _kinds(other)
    if "fresh" in a and "fresh" in b:
        frames = {labels[0]: a["fresh"], labels[1]: b["fresh"]}
        lc = lambda_c_comparison(frames, n_boot=n_boot)
        yield "fresh", "lambda_c", lc, None
        fits = {r["source"]: pd.Series({"lambda_c_logistic": r["lambda_c"], "logistic_ci_low": r["ci_low"],
                                        "logistic_ci_high": r["ci_high"]}) for _, r in lc.iloc[:2].iterrows()}
        yield "fresh", "h_fraction", None, F.h_fraction_overlay(frames, fits=fits)
    for kind in [k for k in a if k in b]:
        for name, make in TABLES[kind]:
            parts = []
            for label, d in zip(labels, (a[kind], b[kind])):
                try:
                    t = make(d)
                except Exception as e:   # one side lacks what a table needs: say so, keep going
                    t = pd.DataFrame({"note": [f"{type(e).__name__}: {e}"]})
                parts.append(t.assign(source=label)[["source", *t.columns]])
            yield kind, name, pd.concat(parts, ignore_index=True, sort=False), None
        for name, make, cond in FIGURES[kind]:
            if cond is not None and not (cond(a[kind]) and cond(b[kind])):   # both have it
                continue
            yield kind, name, None, F.side_by_side(make, {labels[0]: a[kind], labels[1]: b[kind]})


CAPTIONS = {
    "h_fraction": (f"Both sources on one λ axis: the H fraction per λ (error ≥ {H_MIN:.2f} or diverged, over "
                   "runs with a final error) with 95% Wilson CIs; vertical lines: each source's "
                   "critical λ from the logistic fit, its 95% bootstrap CI shaded."),
}


def append_comparison(rep, df: pd.DataFrame, other: pd.DataFrame, labels: tuple[str, str],
                      figures: bool = True, echo: bool = False, n_boot: int = 200):
    """Append the comparison section to ``rep`` (a Report): tables in Markdown, figures under
    ``figures/compare_*.png``; rewrites ``rep.path``. Returns ``rep``."""
    md = [f"\n## Comparison: {labels[0]} beside {labels[1]}\n",
          f"{labels[0]}: {df['run'].nunique()} runs; {labels[1]}: {other['run'].nunique()} runs. "
          "Each table has both (``source`` first); P(H | λ) of both shares one axis; the other figures "
          "draw both, side by side or one above the other.\n"]
    fig_dir = Path(rep.path).parent / "figures"
    made = 0
    for kind, name, table, fig in comparison(df, other, labels, n_boot=n_boot):
        if table is not None:
            rep.tables[f"compare/{name}"] = table
            md.append(f"### {name} ({kind} runs)\n")
            md.append(to_markdown(table))
            if echo:
                print(f"\n== compare/{name} ==")
                print(table.to_string(index=False))
            made += 1
        elif figures:
            p = F.save_png(fig, fig_dir / f"compare_{name}.png")
            rep.figures.append(p)
            md.append(f"![compare {name}](figures/{p.name})\n")
            if name in CAPTIONS:
                md.append(f"_{CAPTIONS[name]}_\n")
            made += 1
    if not made:
        md.append("_No reduction has data on both sides (e.g. fresh runs here, ladders there)._\n")
    rep.markdown = rep.markdown.rstrip("\n") + "\n" + "\n".join(md)
    Path(rep.path).write_text(rep.markdown)
    return rep


def load_other(path: str | Path) -> pd.DataFrame:
    """The frame to compare with: a sweep (Parquet / Tune folders) or a paper archive (CSV/JSON)."""
    loc = Location.of(path)
    if not loc.exists():
        raise FileNotFoundError(f"no such file or folder (expected a sweep folder, a results.parquet or "
                                "a paper archive folder)")
    if is_sweep_path(loc):
        df = load_experiment(loc)
    elif not loc.is_local:
        raise ValueError("no sweep there (results.parquet or Tune trial folders); a paper archive must be "
                         "a local folder")
    else:
        path = Path(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = load_legacy(path)
    if df.empty:
        raise ValueError("no results found (expected a sweep folder, a results.parquet or a paper archive)")
    return df


def labels_for(path: str | Path, other: str | Path) -> tuple[str, str]:
    """Short, distinct names of the two sides (folder names; the full paths if these are equal)."""
    a, b = Location.of(path).name, Location.of(other).name
    return (a, b) if a != b else (str(path), str(other))
