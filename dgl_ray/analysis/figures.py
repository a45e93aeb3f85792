"""The paper's figures: each function takes the tidy frame and returns a matplotlib Figure.

Functions never call ``plt.show()``; in a notebook the returned Figure displays inline, and
:func:`save_png` writes it to disk. Figures are made with the object API (``Figure`` objects not
kept by pyplot), so making many of them in a report does not leak memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import tables as T
from .frames import final_rows


_TARGET: list = []   # a SubFigure to draw into (side_by_side), else a new Figure


def _fig(w: float = 6.0, h: float = 4.0, ncols: int = 1, nrows: int = 1):
    fig = _TARGET[-1] if _TARGET else Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


ERROR_LABEL = "test error (fraction misclassified)"
LAMBDA_LABEL = "λ (weight of the clean-label gradient)"
BRANCH_COLORS = {"L": "tab:blue", "intermediate": "tab:gray", "H": "tab:red"}


def _runs_word(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _branch(err: float, L: float, H: float) -> str:
    return "L" if err <= L else "H" if err >= H else "intermediate"


def side_by_side(make, frames: dict, **kw) -> Figure:
    """One figure with ``make(frame)`` drawn once per entry of ``frames`` ({label: frame}), side by
    side, each panel group titled by its label (e.g. the new sweep beside the paper's archive)."""
    widths = []
    for label, frame in frames.items():   # the size each would have alone
        widths.append(make(frame, **kw).get_size_inches())
    w = sum(x for x, _ in widths)
    h = max(y for _, y in widths) + 0.4
    fig = Figure(figsize=(w, h), layout="constrained")
    subs = fig.subfigures(1, len(frames), width_ratios=[x for x, _ in widths], squeeze=False)[0]
    for sub, (label, frame) in zip(subs, frames.items()):
        _TARGET.append(sub)
        try:
            make(frame, **kw)
        finally:
            _TARGET.pop()
        sub.suptitle(label, fontweight="bold")
    return fig


def error_trajectories(df: pd.DataFrame, *, L: float = T.L_MAX, H: float = T.H_MIN,
                       max_panels: int = 12) -> Figure:
    """Test error against epoch for every run, one panel per λ: thin lines coloured by the run's
    branch (final error: L <= 0.20 blue, intermediate grey, H >= 0.40 red) and the median over runs
    at each epoch (black). The paper's error-trajectory figures."""
    d = df.dropna(subset=["test_error", "epoch"]) if len(df) else df
    lams = sorted(d["lambda"].dropna().unique()) if len(d) else []
    if len(lams) > max_panels:           # keep the figure readable: evenly spaced λ
        lams = [lams[i] for i in np.linspace(0, len(lams) - 1, max_panels).round().astype(int)]
    ncols = min(4, max(1, len(lams)))
    nrows = max(1, int(np.ceil(len(lams) / ncols)))
    fig, axes = _fig(3.2 * ncols, 2.6 * nrows + 0.3, ncols=ncols, nrows=nrows)
    flat = axes.ravel()
    if not lams:
        _empty(flat[0], "evaluations")
    for ax, lam in zip(flat, lams):
        g = d[d["lambda"] == lam].sort_values("epoch")
        counts = {"L": 0, "intermediate": 0, "H": 0}
        for _, r in g.groupby("run", sort=False):
            b = _branch(float(r["test_error"].iloc[-1]), L, H)
            counts[b] += 1
            ax.plot(r["epoch"], r["test_error"], color=BRANCH_COLORS[b], lw=0.6, alpha=0.5,
                    marker="." if len(r) == 1 else None)   # a run with one evaluation is a point
        med = g.groupby("epoch")["test_error"].median()
        ax.plot(med.index, med.to_numpy(), color="black", lw=1.6, label="median")
        ax.axhline(L, color="tab:blue", ls=":", lw=0.8)
        ax.axhline(H, color="tab:red", ls=":", lw=0.8)
        ax.set_ylim(0, 1)
        ax.set_title(f"λ={lam:g}: {_runs_word(sum(counts.values()))} "
                     f"(L {counts['L']}, mid {counts['intermediate']}, H {counts['H']})", fontsize=8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ERROR_LABEL, fontsize=7)
    for ax in flat[len(lams):]:
        ax.set_visible(False)
    if lams:
        from matplotlib.lines import Line2D
        handles = [Line2D([], [], color=c, lw=1, label=f"{b} branch") for b, c in BRANCH_COLORS.items()]
        handles.append(Line2D([], [], color="black", lw=1.6, label="median"))
        flat[0].legend(handles=handles, fontsize=6, loc="upper left")
    fig.suptitle(f"Test error per epoch, {_runs_word(d['run'].nunique())}, coloured by final branch",
                 fontsize=10)
    return fig


def _empty(ax, what: str):
    ax.text(0.5, 0.5, f"no {what} in this frame", ha="center", va="center", transform=ax.transAxes)


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _cell_label(row: pd.Series, cols: list[str]) -> str:
    return ", ".join(f"{c}={row[c]}" for c in cols) if cols else ""


def hysteresis_loop(df: pd.DataFrame, **kw) -> Figure:
    """Mean test error against λ for the up and down legs (one panel per hold/axis cell)."""
    h = T.hysteresis_table(df, **kw)
    cells = [c for c in h.columns if c not in ("lambda", "n_up", "up", "up_std", "n_down", "down",
                                                "down_std", "H_leg", "gap", "up_minus_down",
                                                "n_diverged", "n_missing")]
    groups = list(h.groupby(cells, dropna=False)) if cells else [((), h)]
    fig, axes = _fig(5.0 * max(1, len(groups)), 4.0, ncols=max(1, len(groups)))
    if h.empty:
        _empty(axes[0, 0], "up/down ladders")
    for ax, (key, g) in zip(axes[0], groups):
        g = g.sort_values("lambda")
        for leg, color, mark in (("up", "tab:red", "^"), ("down", "tab:blue", "v")):
            ax.errorbar(g["lambda"], g[leg], yerr=g[f"{leg}_std"], color=color, marker=mark,
                        ms=3, lw=1, capsize=2,  # gap = H leg − L leg (tables.hysteresis_table)
                        label=f"λ {leg} ({'H' if len(g) and leg == g['H_leg'].iloc[0] else 'L'} branch)"
                        + (f", n={int(g[f'n_{leg}'].max())}" if g[f"n_{leg}"].notna().any() else ""))
        both = g.dropna(subset=["up", "down"])
        if len(both):   # the gap between the branches, the loop's area
            ax.fill_between(both["lambda"].to_numpy(float), both["up"].to_numpy(float),
                            both["down"].to_numpy(float), color="tab:purple", alpha=0.15,
                            label="gap (H − L)")
        ax.set_xlabel(LAMBDA_LABEL)
        ax.set_ylabel(ERROR_LABEL)
        ax.set_ylim(0, 1)
        key = key if isinstance(key, tuple) else (key,)
        cell = ", ".join(f"{c}={v}" for c, v in zip(cells, key))
        ax.set_title("Hysteresis loop" + (f" ({cell})" if cell else "")
                     + f": mean error per λ step, {len(g)} steps")
        ax.legend(fontsize=7)
    return fig


def coexistence_map(df: pd.DataFrame, *, title: str | None = None, **kw) -> Figure:
    """Stacked bars per λ: fraction of runs on L, intermediate, H (and diverged), from
    :func:`branch_table` (one panel per varying-axis cell)."""
    b = T.branch_table(df, **kw)
    cells = [c for c in b.columns if c in T.DEFAULT_AXES]
    groups = list(b.groupby(cells, dropna=False)) if cells else [((), b)]
    fig, axes = _fig(max(5.0, 4.5 * len(groups)), 3.8, ncols=max(1, len(groups)))
    if b.empty:
        _empty(axes[0, 0], "runs")
    for ax, (key, g) in zip(axes[0], groups):
        x = np.arange(len(g))
        n = g["n"].to_numpy(dtype=float)
        bottom = np.zeros(len(g))
        for col, color in (("L", "tab:blue"), ("intermediate", "tab:gray"), ("H", "tab:red"),
                           ("n_diverged", "black")):
            v = g[col].to_numpy(dtype=float) / np.where(n > 0, n, 1)
            ax.bar(x, v, bottom=bottom, color=color, label=col if col != "n_diverged" else "diverged")
            bottom += v
        ax.set_xticks(x, [f"{v:g}" for v in g["lambda"]], rotation=45)
        ax.set_xlabel(LAMBDA_LABEL)
        ax.set_ylabel("fraction of runs")
        ax.set_ylim(0, 1.05)
        key = key if isinstance(key, tuple) else (key,)
        cell = ", ".join(f"{c}={v}" for c, v in zip(cells, key))
        ax.set_title(title or f"Branch of each run per λ{f' ({cell})' if cell else ''}: "
                              f"{_runs_word(int(g['n'].sum()))}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    return fig


def error_histograms(df: pd.DataFrame, *, bins: int = 20, L: float = T.L_MAX,
                     H: float = T.H_MIN) -> Figure:
    """One histogram of final errors per λ, with the L and H thresholds marked."""
    f = final_rows(df, ["run"])
    lams = sorted(f["lambda"].dropna().unique())
    ncols = min(4, max(1, len(lams)))
    nrows = max(1, int(np.ceil(len(lams) / ncols)))
    fig, axes = _fig(3.0 * ncols, 2.4 * nrows, ncols=ncols, nrows=nrows)
    flat = axes.ravel()
    if not lams:
        _empty(flat[0], "final errors")
    for ax, lam in zip(flat, lams):
        e = f.loc[f["lambda"] == lam, "test_error"].dropna()
        ax.hist(e, bins=np.linspace(0, 1, bins + 1), color="tab:purple")
        ax.axvline(L, color="tab:blue", ls="--", lw=1)
        ax.axvline(H, color="tab:red", ls="--", lw=1)
        ax.set_title(f"λ={lam:g} (n={len(e)})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel("final " + ERROR_LABEL, fontsize=7)
        ax.set_ylabel("runs", fontsize=7)
    for ax in flat[len(lams):]:
        ax.set_visible(False)
    if lams:
        fig.suptitle(f"Final test error per λ, {_runs_word(f['run'].nunique())}; dashed: "
                     f"L ≤ {L:g} (blue), H ≥ {H:g} (red)", fontsize=10)
    return fig


def survival_curves(df: pd.DataFrame, **kw) -> Figure:
    """Kaplan–Meier survival curves per λ (:func:`km_curve`)."""
    km = T.km_curve(df, **kw)
    fig, axes = _fig()
    ax = axes[0, 0]
    if km.empty:
        _empty(ax, "observed runs")
    cells = [c for c in km.columns if c not in ("time", "survival")]
    for key, g in (km.groupby(cells, dropna=False) if cells else [((), km)]):
        key = key if isinstance(key, tuple) else (key,)
        ax.step(g["time"], g["survival"], where="post",
                label=", ".join(f"{c}={v}" for c, v in zip(cells, key)))
    ax.set_xlabel("epochs in observation")
    ax.set_ylabel("surviving fraction of runs")
    ax.set_title("Survival (Kaplan–Meier): dead at 5 evaluations ≥ 0.40 in a row", fontsize=9)
    ax.set_ylim(-0.02, 1.05)
    if not km.empty:
        ax.legend(fontsize=8)
    return fig


def phase_diagram(df: pd.DataFrame, *, value: str = "frac_H", **kw) -> Figure:
    """Heat map over λ × η of a :func:`branch_table` column (default the H fraction)."""
    b = T.branch_table(df, axes=tuple(a for a in T.DEFAULT_AXES if a != "eta") + ("eta",), **kw)
    if "eta" not in b:
        b = b.assign(eta=df["eta"].iloc[0] if len(df) else np.nan)
    fig, axes = _fig()
    ax = axes[0, 0]
    if b.empty:
        _empty(ax, "runs")
        return fig
    grid = b.pivot_table(index="eta", columns="lambda", values=value, aggfunc="mean")
    im = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="coolwarm",
                   vmin=0, vmax=1 if value.startswith("frac") or value.endswith("error") else None)
    ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns], rotation=45)
    ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index])
    ax.set_xlabel(LAMBDA_LABEL)
    ax.set_ylabel("η (label-noise rate)")
    fig.colorbar(im, ax=ax, label=value.replace("frac_H", "fraction of runs on H (error ≥ 0.40)"))
    ax.set_title(f"Phase diagram λ × η: {_runs_word(int(b['n'].sum()))}", fontsize=9)
    return fig


def spinodal_plot(df: pd.DataFrame, **kw) -> Figure:
    """Per-run spinodal λ (open marks: censored) per η/hold cell and direction, with the means."""
    p = T.spinodal_points(df, **kw)
    fig, axes = _fig()
    ax = axes[0, 0]
    if p.empty:
        _empty(ax, "ladders")
        return fig
    cells = [c for c in ("eta", "hold") if c in p]
    labels = []
    for i, (key, g) in enumerate(p.groupby(cells, dropna=False) if cells else [((), p)]):
        key = key if isinstance(key, tuple) else (key,)
        labels.append(", ".join(f"{c}={v}" for c, v in zip(cells, key)))
        for leg, color, dx in (("up", "tab:red", -0.1), ("down", "tab:blue", 0.1)):
            s = g[g["direction"] == leg]
            if s.empty:
                continue
            jitter = np.linspace(-0.05, 0.05, len(s))
            cens = s["censored"].to_numpy()
            ax.scatter(i + dx + jitter[~cens], s["spinodal_lambda"][~cens], color=color, s=14,
                       label=f"λ {leg}" if i == 0 else None)
            ax.scatter(i + dx + jitter[cens], s["spinodal_lambda"][cens], facecolors="none",
                       edgecolors=color, s=14)
            ax.hlines(s["spinodal_lambda"].mean(), i + dx - 0.08, i + dx + 0.08, color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel("spinodal λ (open: censored)")
    ax.legend(fontsize=8)
    return fig


def finite_size_curves(df: pd.DataFrame, *, value: str = "frac_H", **kw) -> Figure:
    """A :func:`branch_table` column against λ, one line per width (one panel per η)."""
    b = T.branch_table(df, axes=("width", "eta"), **kw)
    for c in ("width", "eta"):
        if c not in b:
            b[c] = df[c].iloc[0] if c in df and len(df) else np.nan
    etas = sorted(b["eta"].unique(), key=lambda v: (pd.isna(v), v))
    fig, axes = _fig(4.5 * max(1, len(etas)), 3.6, ncols=max(1, len(etas)))
    if b.empty:
        _empty(axes[0, 0], "runs")
    for ax, eta in zip(axes[0], etas):
        g = b[b["eta"].eq(eta) | (b["eta"].isna() & pd.isna(eta))]
        for w, gw in g.groupby("width", dropna=False):
            ax.plot(gw["lambda"], gw[value], marker="o", ms=3, label=f"width {w:g}")
        ax.set_title(f"η={eta}")
        ax.set_xlabel(LAMBDA_LABEL)
        ax.set_ylabel(value.replace("frac_H", "fraction of runs on H (error ≥ 0.40)"))
        ax.legend(fontsize=8)
    return fig


FIGURES = {
    "error_trajectories": error_trajectories,
    "hysteresis_loop": hysteresis_loop,
    "coexistence_map": coexistence_map,
    "error_histograms": error_histograms,
    "survival_curves": survival_curves,
    "phase_diagram": phase_diagram,
    "spinodal_plot": spinodal_plot,
    "finite_size_curves": finite_size_curves,
}
