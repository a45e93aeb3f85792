"""The paper's figures: each function takes the tidy frame and returns a matplotlib Figure.

Functions never call ``plt.show()``; in a notebook the returned Figure displays inline, and
:func:`save_png` writes it to disk. Figures are made with the object API (``Figure`` objects not
kept by pyplot), so making many of them in a report does not leak memory.

One colour meaning in every figure of a report (:data:`PALETTE`): L blue, intermediate grey,
H red, trap dark red, diverged black, missing data hatched light grey; sources of a comparison and
axis values (widths, λ of survival curves) take colours that are none of these. Multi-panel figures
wrap into at most :data:`MAX_COLS` columns of panels about 3.2 in wide, so that each panel stays
about 380 px wide on the HTML page (1200 px at 120 dpi). Every H fraction drawn carries its 95%
Wilson interval (:func:`wilson_ci`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import MaxNLocator

from ..paper import DEATH_MIN, DEATH_RUN, H_MIN, L_MAX, T_MIN
from . import tables as T
from .frames import decided, final_rows


_TARGET: list = []   # a SubFigure to draw into (side_by_side), else a new Figure

PALETTE = {
    "L": "#1f77b4",             # low-error branch (ordered)
    "intermediate": "#8c8c8c",
    "H": "#d62728",             # high-error branch (collapsed)
    "T": "#5a0b0b",             # the ≈ 90% trap, a part of H: dark red
    "diverged": "black",
    "missing": "#d9d9d9",       # no data / no final error: hatched light grey
    "gap": "#9467bd",
}
BRANCH_COLORS = {b: PALETTE[b] for b in ("L", "intermediate", "H")}
MISSING_HATCH = "///"
DECIDED_HATCH = "xx"     # runs decided early (--decide-early): a branch without a final error
# sources of a comparison: neither blue nor red, told apart by marker and line style as well
SOURCE_STYLES = [dict(color="black", marker="o", ls="-"), dict(color="#2ca02c", marker="s", ls="--"),
                 dict(color="#ff7f0e", marker="D", ls=":"), dict(color="#8c564b", marker="^", ls="-.")]
# H fraction 0 → 1 from the L blue to the H red through purple: its middle is no grey, unlike the
# hatched grey of a missing cell
H_FRACTION_CMAP = LinearSegmentedColormap.from_list("dgl_h_fraction",
                                                    [PALETTE["L"], "#9467bd", PALETTE["H"]])
MAX_COLS = 3          # panels per row
PANEL_W = 3.2         # inches per panel: 3 panels = 9.6 in = 1152 px at 120 dpi, the HTML's width
PANEL_H = 2.7
CI_LEVEL = 0.95

ERROR_LABEL = "test error (fraction misclassified)"
LAMBDA_LABEL = "λ (weight of the clean-label gradient)"
H_FRACTION_LABEL = "fraction of runs on H"


def _fig(w: float = 6.0, h: float = 4.0, ncols: int = 1, nrows: int = 1):
    fig = _TARGET[-1] if _TARGET else Figure(figsize=(w, h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _grid(n: int, panel_w: float = PANEL_W, panel_h: float = PANEL_H, extra_h: float = 0.5,
          max_cols: int = MAX_COLS, extra_w: float = 0.0):
    """A figure of ``n`` panels wrapped into at most ``max_cols`` columns (``extra_w`` inches beside
    them, e.g. for a colour bar); (fig, the first ``n`` axes). Panels past ``n`` are hidden."""
    ncols = min(max_cols, max(1, n))
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = _fig(panel_w * ncols + extra_w, panel_h * nrows + extra_h, ncols=ncols, nrows=nrows)
    flat = list(axes.ravel())
    for ax in flat[max(n, 1):]:
        ax.set_visible(False)
    return fig, flat[:max(n, 1)]


def fmt_value(v) -> str:
    """A value as a label: integers as integers (hold=1, not 1.0), other floats with :g."""
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "n/a"
        return str(int(v)) if float(v).is_integer() else f"{float(v):g}"
    return str(v)


def _cell_label(cells: list[str], key) -> str:
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{c}={fmt_value(v)}" for c, v in zip(cells, key))


def _runs_word(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _branch(err: float, L: float, H: float) -> str:
    return "L" if err <= L else "H" if err >= H else "intermediate"


def wilson_ci(k, n, level: float = CI_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of k successes in n trials (scipy's binomtest), element-wise; NaN where
    n is 0. Used for every H fraction drawn: with 4 runs per λ a fraction of 1/2 spans 0.15–0.85."""
    from scipy.stats import binomtest
    k = np.atleast_1d(np.asarray(k, dtype=float))
    n = np.atleast_1d(np.asarray(n, dtype=float))
    lo, hi = np.full(len(k), np.nan), np.full(len(k), np.nan)
    for i, (ki, ni) in enumerate(zip(k, n)):
        if ni > 0 and np.isfinite(ki):
            ci = binomtest(int(ki), int(ni)).proportion_ci(confidence_level=level, method="wilson")
            lo[i], hi[i] = ci.low, ci.high
    return lo, hi


def h_fraction_table(df: pd.DataFrame, *, H: float = H_MIN, axes=T.DEFAULT_AXES,
                     diverged_as_H: bool = True) -> pd.DataFrame:
    """Per λ (and varying axis): ``k`` runs on H (error >= ``H``; diverged runs too when
    ``diverged_as_H``, as :func:`critical_point` counts them; runs decided H early too), ``n`` runs
    with a final state or a decided branch (unfinished and never-evaluated runs are missing, not
    counted), ``frac_H`` = k/n and its 95% Wilson interval ``ci_low``, ``ci_high``."""
    b = T.branch_table(df, H=H, axes=axes)
    if b.empty:
        return b.assign(k=[], n_final=[], frac=[], ci_low=[], ci_high=[])
    k = b["H"] + b["decided_H"] + (b["n_diverged"] if diverged_as_H else 0)
    n = b["n"] - b["n_missing"] - (0 if diverged_as_H else b["n_diverged"])
    lo, hi = wilson_ci(k, n)
    return b.assign(k=k.to_numpy(), n_final=n.to_numpy(),
                    frac=np.where(n > 0, k / n.where(n > 0, 1), np.nan), ci_low=lo, ci_high=hi)


def side_by_side(make, frames: dict, **kw) -> Figure:
    """One figure with ``make(frame)`` drawn once per entry of ``frames`` ({label: frame}), each panel
    group titled by its label (e.g. the new sweep beside the paper's archive): side by side when they
    fit the HTML page's width together (:data:`MAX_COLS` panels), else one above the other."""
    sizes = [make(frame, **kw).get_size_inches() for frame in frames.values()]  # each one's size alone
    fits = sum(x for x, _ in sizes) <= PANEL_W * MAX_COLS + 0.5
    if fits:
        w, h = sum(x for x, _ in sizes), max(y for _, y in sizes) + 0.4
        subs = Figure(figsize=(w, h), layout="constrained").subfigures(
            1, len(frames), width_ratios=[x for x, _ in sizes], squeeze=False)[0]
    else:
        w, h = max(x for x, _ in sizes), sum(y + 0.4 for _, y in sizes)
        subs = Figure(figsize=(w, h), layout="constrained").subfigures(
            len(frames), 1, height_ratios=[y + 0.4 for _, y in sizes], squeeze=False)[:, 0]
    fig = subs[0].figure
    for sub, (label, frame) in zip(subs, frames.items()):
        _TARGET.append(sub)
        try:
            make(frame, **kw)
        finally:
            _TARGET.pop()
        sub.suptitle(label, fontweight="bold")
    return fig


def _empty(ax, what: str):
    ax.text(0.5, 0.5, f"no {what} in this frame", ha="center", va="center", transform=ax.transAxes)


def save_png(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG at ``path`` (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _threshold_lines(ax, L: float, H: float, *, vertical: bool = False, labels: bool = True):
    """The paper's L and H thresholds as dashed lines in the branch colours."""
    line = ax.axvline if vertical else ax.axhline
    line(L, color=PALETTE["L"], ls="--", lw=0.9, label=f"L threshold (error ≤ {L:g})" if labels else None)
    line(H, color=PALETTE["H"], ls="--", lw=0.9, label=f"H threshold (error ≥ {H:g})" if labels else None)


def _figure_legend(fig, handles, ncols: int = 3):
    """One legend for all panels, below them (constrained layout keeps it clear of the axes)."""
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=ncols, fontsize=7, frameon=False)


def error_trajectories(df: pd.DataFrame, *, L: float = L_MAX, H: float = H_MIN,
                       max_panels: int = 12) -> Figure:
    """Test error against epoch for every run, one panel per λ: thin lines coloured by the run's
    branch (final error: L <= 0.20 blue, intermediate grey, H >= 0.40 red) and the median over runs
    at each epoch (black; dashed past the first run that stopped, decided early or unfinished: there it is
    the median of the runs still training, which a decision leaves near λ_c). The paper's error-trajectory
    figures. A run decided early (``--decide-early``) is dotted, in the colour of its decided branch (H red,
    not_H blue): its last error is no final error."""
    d = df.dropna(subset=["test_error", "epoch"]) if len(df) else df
    early = set(d.loc[decided(d), "run"]) if len(d) else set()
    lams = sorted(d["lambda"].dropna().unique()) if len(d) else []
    if len(lams) > max_panels:           # keep the figure readable: evenly spaced λ
        lams = [lams[i] for i in np.linspace(0, len(lams) - 1, max_panels).round().astype(int)]
    fig, flat = _grid(len(lams), extra_h=0.8)
    if not lams:
        _empty(flat[0], "evaluations")
    survivors = False
    for ax, lam in zip(flat, lams):
        g = d[d["lambda"] == lam].sort_values("epoch")
        counts = {"L": 0, "intermediate": 0, "H": 0, "decided": 0}
        for run, r in g.groupby("run", sort=False):
            if run in early:
                counts["decided"] += 1
                b = "H" if str(r["decided_branch"].iloc[-1]) == "H" else "L"
            else:
                b = _branch(float(r["test_error"].iloc[-1]), L, H)
                counts[b] += 1
            ax.plot(r["epoch"], r["test_error"], color=BRANCH_COLORS[b], lw=0.6, alpha=0.5,
                    ls=":" if run in early else "-",
                    marker="." if len(r) == 1 else None)   # a run with one evaluation is a point
        # the median over every run of the panel while each still has an error; past the first run that
        # stopped (decided early, or unfinished) it is the survivors' median, dashed: not the panel's
        med = g.groupby("epoch")["test_error"].agg(["median", "count"])
        whole = med["count"].to_numpy() >= g["run"].nunique()
        last = int(np.flatnonzero(whole)[-1]) if whole.any() else -1
        ax.plot(med.index[:last + 1], med["median"].to_numpy()[:last + 1], color="black", lw=1.6, label="median")
        if last + 1 < len(med):
            survivors = True
            ax.plot(med.index[max(last, 0):], med["median"].to_numpy()[max(last, 0):], color="black", lw=1,
                    ls="--", label="median of the runs still training")
        _threshold_lines(ax, L, H, labels=False)
        ax.set_ylim(0, 1)
        ax.set_title(f"λ={lam:g}: {_runs_word(sum(counts.values()))} "
                     f"(L {counts['L']}, mid {counts['intermediate']}, H {counts['H']}"
                     + (f", decided {counts['decided']}" if counts["decided"] else "") + ")", fontsize=8)
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel(ERROR_LABEL, fontsize=7)
    if lams:
        handles = [Line2D([], [], color=c, lw=1, label=f"{b} branch (final error)")
                   for b, c in BRANCH_COLORS.items()]
        handles.append(Line2D([], [], color="black", lw=1.6, label="median over runs"))
        if survivors:
            handles.append(Line2D([], [], color="black", lw=1, ls="--",
                                  label="median of the runs still training (others decided or unfinished)"))
        if early:
            handles.append(Line2D([], [], color="grey", ls=":", lw=1, label="decided early (its branch's colour)"))
        handles += [Line2D([], [], color=PALETTE["L"], ls="--", lw=0.9, label=f"L threshold {L:g}"),
                    Line2D([], [], color=PALETTE["H"], ls="--", lw=0.9, label=f"H threshold {H:g}")]
        _figure_legend(fig, handles)
    fig.suptitle(f"Test error per epoch, {_runs_word(d['run'].nunique())}, coloured by final branch",
                 fontsize=10)
    return fig


HYSTERESIS_STAT = "mean ± std"   # what the lines and bands of the loop are (std: ddof of the table)


def hysteresis_loop(df: pd.DataFrame, *, L: float = L_MAX, H: float = H_MIN, ddof: int = 1,
                    **kw) -> Figure:
    """The seed notebook's hysteresis figure, one panel per hold/axis cell: per leg the mean test
    error over runs at each λ step (line) and a mean ± std band (``ddof`` 1), the H leg red and the L
    leg blue (:func:`tables.hysteresis_table` decides which leg is H), the L/H thresholds dashed and
    the gap between the legs shaded."""
    h = T.hysteresis_table(df, ddof=ddof, **kw)
    cells = [c for c in h.columns if c not in ("lambda", "n_up", "up", "up_std", "n_down", "down",
                                                "down_std", "H_leg", "gap", "up_minus_down",
                                                "n_diverged", "n_missing")]
    groups = list(h.groupby(cells, dropna=False)) if cells else [((), h)]
    fig, flat = _grid(len(groups), panel_w={1: 6.4, 2: 4.6}.get(len(groups), PANEL_W), panel_h=3.4,
                      extra_h=1.0, max_cols=2 if len(groups) < 3 else MAX_COLS)
    if h.empty:
        _empty(flat[0], "up/down ladders")
        return fig
    n_runs = {}
    for ax, (key, g) in zip(flat, groups):
        g = g.sort_values("lambda")
        h_leg = g["H_leg"].iloc[0]
        for leg, mark, arrow in (("up", "^", "λ↑"), ("down", "v", "λ↓")):
            branch = "H" if leg == h_leg else "L"
            s = g.dropna(subset=[leg])
            x, m, sd = (s[c].to_numpy(float) for c in ("lambda", leg, f"{leg}_std"))
            n = int(s[f"n_{leg}"].max()) if len(s) else 0
            n_runs[(branch, arrow)] = max(n, n_runs.get((branch, arrow), 0))
            ax.fill_between(x, m - sd, m + sd, color=PALETTE[branch], alpha=0.25, lw=0,
                            label=f"{branch} ± std")
            ax.plot(x, m, color=PALETTE[branch], marker=mark, ms=3, lw=1.3,
                    label=f"{branch} branch ({arrow})")
        both = g.dropna(subset=["up", "down"])
        if len(both):   # the gap between the branches, the loop's area
            ax.fill_between(both["lambda"].to_numpy(float), both["up"].to_numpy(float),
                            both["down"].to_numpy(float), facecolor="none", edgecolor=PALETTE["gap"],
                            hatch="..", lw=0, alpha=0.5, label="gap (H − L)")
        _threshold_lines(ax, L, H, labels=False)
        ax.set_xlabel(LAMBDA_LABEL, fontsize=8)
        ax.set_ylabel(ERROR_LABEL, fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        cell = _cell_label(cells, key)
        ax.set_title((f"{cell}: " if cell else "") + f"{len(g)} λ steps", fontsize=9)
    handles = []
    for (branch, arrow), n in sorted(n_runs.items(), key=lambda kv: kv[0][0] != "H"):
        handles.append(Line2D([], [], color=PALETTE[branch], lw=1.3,
                              label=f"{branch} branch ({arrow}): {HYSTERESIS_STAT} (ddof {ddof}) "
                                    f"over {_runs_word(n)}"))
    handles += [Patch(facecolor="none", edgecolor=PALETTE["gap"], hatch="..", label="gap (H − L)"),
                Line2D([], [], color=PALETTE["L"], ls="--", lw=0.9, label=f"L threshold (error ≤ {L:g})"),
                Line2D([], [], color=PALETTE["H"], ls="--", lw=0.9, label=f"H threshold (error ≥ {H:g})")]
    _figure_legend(fig, handles, ncols=2)
    fig.suptitle(f"Hysteresis loop: {HYSTERESIS_STAT} of the error per λ step", fontsize=10)
    return fig


def coexistence_map(df: pd.DataFrame, *, title: str | None = None, L: float = L_MAX,
                    H: float = H_MIN, **kw) -> Figure:
    """Stacked bars per λ (one panel per varying-axis cell), from :func:`branch_table`: from the
    bottom the trap (dark red, a part of H), the rest of H (red), intermediate, L (blue), diverged
    (black) and runs without a final error (hatched grey), so that the top of the red is the H
    fraction; its 95% Wilson interval is drawn there. Runs decided early (``--decide-early``) are hatched
    in their branch's colour: decided H on top of H (inside the H fraction), decided not_H above L."""
    b = T.branch_table(df, L=L, H=H, **kw)
    cells = [c for c in b.columns if c in T.DEFAULT_AXES]
    groups = list(b.groupby(cells, dropna=False)) if cells else [((), b)]
    many = max((len(g) for _, g in groups), default=1)
    fig, flat = _grid(len(groups), panel_w=max(5.6, 0.32 * many) if len(groups) == 1 else PANEL_W,
                      extra_h=0.8)
    if b.empty:
        _empty(flat[0], "runs")
    for ax, (key, g) in zip(flat, groups):
        x = np.arange(len(g))
        n = g["n"].to_numpy(dtype=float)
        share = lambda v: np.asarray(v, dtype=float) / np.where(n > 0, n, 1)
        segments = [("T", g["T"], PALETTE["T"], None), ("H", g["H"] - g["T"], PALETTE["H"], None),
                    ("decided H", g["decided_H"], PALETTE["H"], DECIDED_HATCH),
                    ("intermediate", g["intermediate"], PALETTE["intermediate"], None),
                    ("L", g["L"], PALETTE["L"], None),
                    ("decided not_H", g["decided"] - g["decided_H"], PALETTE["L"], DECIDED_HATCH),
                    ("diverged", g["n_diverged"], PALETTE["diverged"], None),
                    ("missing", g["n_missing"], PALETTE["missing"], MISSING_HATCH)]
        bottom = np.zeros(len(g))
        for _, v, color, hatch in segments:
            ax.bar(x, share(v), bottom=bottom, color=color, hatch=hatch, edgecolor="white" if not hatch
                   else "#999999", lw=0.3)
            bottom += share(v)
        k = (g["H"] + g["decided_H"]).to_numpy(float)
        n_final = (g["n"] - g["n_missing"] - g["n_diverged"]).to_numpy(float)
        lo, hi = wilson_ci(k, n_final)
        top = share(k)
        ax.errorbar(x, top, yerr=[top - lo, hi - top], fmt="none", ecolor="black", elinewidth=1,
                    capsize=3)
        ax.set_xticks(x, [f"{v:g}" for v in g["lambda"]], rotation=45, fontsize=7)
        ax.set_xlabel(LAMBDA_LABEL, fontsize=8)
        ax.set_ylabel("fraction of runs", fontsize=8)
        ax.set_ylim(0, 1.05)
        cell = _cell_label(cells, key)
        ax.set_title(title or ((f"{cell}: " if cell else "") + _runs_word(int(g["n"].sum()))),
                     fontsize=9)
    handles = [Patch(color=PALETTE["L"], label=f"L (≤ {L:g})"),
               Patch(color=PALETTE["intermediate"], label="intermediate"),
               Patch(color=PALETTE["H"], label=f"H (≥ {H:g})"),
               Patch(color=PALETTE["T"], label=f"trap (≥ {T_MIN:g}, part of H)"),
               Patch(color=PALETTE["diverged"], label="diverged"),
               Patch(facecolor=PALETTE["missing"], hatch=MISSING_HATCH, edgecolor="#999999",
                     label="no final error (unfinished)"),
               Line2D([], [], color="black", lw=1, marker="|", label="H fraction: 95% Wilson CI")]
    if len(b) and b["decided"].sum():
        handles += [Patch(facecolor=PALETTE[c], hatch=DECIDED_HATCH, edgecolor="white", label=f"decided {w} early")
                    for c, w in (("H", "H"), ("L", "not_H"))]
    _figure_legend(fig, handles, ncols=4 if len(groups) > 1 else 3)   # the legend fits a lone panel
    fig.suptitle("Branch of each run's final error per λ", fontsize=10)
    return fig


def error_histograms(df: pd.DataFrame, *, bins: int = 20, L: float = L_MAX,
                     H: float = H_MIN) -> Figure:
    """One histogram of final errors per λ and varying-axis cell (η, width, ...: cells are never
    pooled, an L cell beside an H cell would look bimodal), bars coloured by the branch of their bin
    (trap bins dark), the L and H thresholds dashed."""
    f = final_rows(df, ["run"])
    cells = T.varying_axes(f)
    panels = [(dict(zip(cells + ["lambda"], k if isinstance(k, tuple) else (k,))), g)
              for k, g in (f.dropna(subset=["lambda"]).groupby(cells + ["lambda"], dropna=False)
                           if len(f) else [])]
    fig, flat = _grid(len(panels), panel_h=2.3, extra_h=0.6)
    if not panels:
        _empty(flat[0], "final errors")
    edges = np.linspace(0, 1, bins + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    colors = [PALETTE["T" if m >= T_MIN else _branch(m, L, H)] for m in mids]
    for ax, (key, g) in zip(flat, panels):
        e = g["test_error"].dropna()
        counts, _ = np.histogram(e, bins=edges)
        ax.bar(mids, counts, width=np.diff(edges), color=colors, edgecolor="white", lw=0.3)
        _threshold_lines(ax, L, H, vertical=True, labels=False)
        cell = ", ".join(f"{c}={fmt_value(v)}" for c, v in key.items() if c != "lambda")
        ax.set_title((f"{cell}, " if cell else "") + f"λ={key['lambda']:g} (n={len(e)})", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel("final " + ERROR_LABEL, fontsize=7)
        ax.set_ylabel("runs", fontsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))   # counts of runs: no 2.5 runs
    if panels:
        fig.suptitle(f"Final test error per λ, {_runs_word(f['run'].nunique())}; dashed: "
                     f"L ≤ {L:g} (blue), H ≥ {H:g} (red)", fontsize=10)
    return fig


def _sequence_colors(n: int) -> list:
    """``n`` colours for values of an axis (widths, λ): viridis, which holds no branch colour."""
    from matplotlib import colormaps
    return [colormaps["viridis"](v) for v in np.linspace(0.0, 0.85, max(n, 1))][:n]


def survival_curves(df: pd.DataFrame, **kw) -> Figure:
    """Kaplan–Meier survival curves per λ (:func:`km_curve`)."""
    km = T.km_curve(df, **kw)
    fig, axes = _fig(5.5, 3.8)
    ax = axes[0, 0]
    if km.empty:
        _empty(ax, "observed runs")
    cells = [c for c in km.columns if c not in ("time", "survival")]
    groups = list(km.groupby(cells, dropna=False)) if cells else [((), km)]
    for (key, g), color in zip(groups, _sequence_colors(len(groups))):
        ax.step(g["time"], g["survival"], where="post", color=color, label=_cell_label(cells, key))
    ax.set_xlabel("epochs in observation")
    ax.set_ylabel("surviving fraction of runs")
    ax.set_title(f"Survival (Kaplan–Meier): dead at {DEATH_RUN} evaluations\n"
                 f"≥ {DEATH_MIN:g} in a row", fontsize=9)
    ax.set_ylim(-0.02, 1.05)
    if not km.empty:
        ax.legend(fontsize=8)
    return fig


NO_DATA_GID = "no-data"   # the gid of the hatched patches that mark (η, λ) cells without runs


def phase_diagram(df: pd.DataFrame, *, value: str = "frac_H", **kw) -> Figure:
    """Heat map over λ × η of a :func:`branch_table` column (default the H fraction), one panel per
    cell of the other varying axes (a width sweep is not pooled). Each cell is annotated with its
    counts (k/n on H); cells without runs are hatched grey "no data", a colour the colormap (blue
    through purple to red) never takes."""
    axes = tuple(a for a in T.DEFAULT_AXES if a != "eta") + ("eta",)
    b = T.branch_table(df, axes=axes, **kw)
    if "eta" not in b:
        b = b.assign(eta=df["eta"].iloc[0] if len(df) else np.nan)
    others = [c for c in b.columns if c in T.DEFAULT_AXES and c != "eta"]
    groups = list(b.groupby(others, dropna=False)) if others else [((), b)]
    lams = sorted(b["lambda"].dropna().unique()) if len(b) else []
    etas = sorted(b["eta"].unique(), key=lambda v: (pd.isna(v), v)) if len(b) else []
    # two panels a row at most: the colour bar beside them takes a third panel's room
    fig, flat = _grid(len(groups), panel_w=max(4.2, 0.55 * len(lams) + 1.5) if len(groups) == 1
                      else 4.2, panel_h=max(2.6, 0.45 * len(etas) + 1.6), extra_h=0.6,
                      extra_w=0.7, max_cols=2)
    if b.empty:
        _empty(flat[0], "runs")
        return fig
    vmax = 1 if value.startswith("frac") or value.endswith("error") else None
    im = None
    for ax, (key, g) in zip(flat, groups):
        grid = (g.pivot_table(index="eta", columns="lambda", values=value, aggfunc="mean", dropna=False)
                .reindex(index=etas, columns=lams))
        counts = g.set_index(["eta", "lambda"])
        z = np.ma.masked_invalid(grid.to_numpy(dtype=float))
        im = ax.imshow(z, origin="lower", aspect="auto", cmap=H_FRACTION_CMAP, vmin=0, vmax=vmax)
        for i, eta in enumerate(etas):
            for j, lam in enumerate(lams):
                if z.mask is not np.ma.nomask and z.mask[i, j]:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=PALETTE["missing"],
                                           hatch=MISSING_HATCH, edgecolor="#999999", lw=0,
                                           gid=NO_DATA_GID, label="no data"))
                elif (eta, lam) in counts.index and value == "frac_H":
                    r = counts.loc[(eta, lam)]
                    r = r.iloc[0] if isinstance(r, pd.DataFrame) else r
                    ax.text(j, i, f"{int(r['H'])}/{int(r['n'])}", ha="center", va="center",
                            fontsize=6, color="white")
        ax.set_xticks(range(len(lams)), [f"{v:g}" for v in lams], rotation=45, fontsize=7)
        ax.set_yticks(range(len(etas)), [fmt_value(v) for v in etas], fontsize=7)
        ax.set_xlabel(LAMBDA_LABEL, fontsize=8)
        ax.set_ylabel("η (label-noise rate)", fontsize=8)
        cell = _cell_label(others, key)
        ax.set_title((f"{cell}: " if cell else "") + _runs_word(int(g["n"].sum())), fontsize=9)
    cb = fig.colorbar(im, ax=flat, shrink=0.9)
    cb.set_label(value.replace("frac_H", f"{H_FRACTION_LABEL} (error ≥ {H_MIN:g})"), fontsize=8)
    if any(p.get_gid() == NO_DATA_GID for ax in flat for p in ax.patches):
        _figure_legend(fig, [Patch(facecolor=PALETTE["missing"], hatch=MISSING_HATCH,
                                   edgecolor="#999999", label="no data (no run at this λ, η)")], ncols=1)
    fig.suptitle("Phase diagram λ × η" + (": cells give k/n runs on H" if value == "frac_H" else ""),
                 fontsize=10)
    return fig


def spinodal_plot(df: pd.DataFrame, **kw) -> Figure:
    """Per-run spinodal λ (open marks: censored) per η/hold cell and direction, with the means. An
    up ladder starts on L (blue), a down ladder on H (red)."""
    p = T.spinodal_points(df, **kw)
    fig, axes = _fig(5.5, 3.8)
    ax = axes[0, 0]
    if p.empty:
        _empty(ax, "ladders")
        return fig
    cells = [c for c in ("eta", "hold") if c in p]
    labels = []
    for i, (key, g) in enumerate(p.groupby(cells, dropna=False) if cells else [((), p)]):
        labels.append(_cell_label(cells, key))
        for leg, branch, dx in (("up", "L", -0.1), ("down", "H", 0.1)):
            s = g[g["direction"] == leg]
            if s.empty:
                continue
            jitter = np.linspace(-0.05, 0.05, len(s))
            cens = s["censored"].to_numpy(dtype=bool)
            ax.scatter(i + dx + jitter[~cens], s["spinodal_lambda"][~cens], color=PALETTE[branch], s=14,
                       label=f"λ{'↑' if leg == 'up' else '↓'} (ladder from {branch})" if i == 0 else None)
            ax.scatter(i + dx + jitter[cens], s["spinodal_lambda"][cens], facecolors="none",
                       edgecolors=PALETTE[branch], s=14)
            ax.hlines(s["spinodal_lambda"].mean(), i + dx - 0.08, i + dx + 0.08, color=PALETTE[branch])
    ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    ax.set_ylabel("spinodal λ (open: censored)")
    ax.set_title("Spinodal λ per run; bars: means", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def finite_size_curves(df: pd.DataFrame, *, value: str = "frac_H", **kw) -> Figure:
    """The H fraction against λ, one line per width (viridis) with its 95% Wilson interval, one panel
    per η; ``value`` another :func:`branch_table` column (then without intervals)."""
    b = T.branch_table(df, axes=("width", "eta"), **kw)
    for c in ("width", "eta"):
        if c not in b:
            b[c] = df[c].iloc[0] if c in df and len(df) else np.nan
    etas = sorted(b["eta"].unique(), key=lambda v: (pd.isna(v), v))
    fig, flat = _grid(len(etas), panel_w=4.2 if len(etas) < 3 else PANEL_W, panel_h=3.2,
                      max_cols=2 if len(etas) < 3 else MAX_COLS)
    if b.empty:
        _empty(flat[0], "runs")
    widths = sorted(b["width"].unique(), key=lambda v: (pd.isna(v), v))
    colors = dict(zip(widths, _sequence_colors(len(widths))))
    steps = np.diff(np.unique(b["lambda"].dropna())) if len(b) else []
    # widths side by side at each λ, so that their intervals do not hide each other
    dodge = {w: (i - (len(widths) - 1) / 2) * 0.12 * (steps.min() if len(steps) else 0)
             for i, w in enumerate(widths)}
    for ax, eta in zip(flat, etas):
        g = b[b["eta"].eq(eta) | (b["eta"].isna() & pd.isna(eta))]
        for w, gw in g.groupby("width", dropna=False):
            gw = gw.sort_values("lambda")
            x = gw["lambda"].to_numpy(float) + dodge.get(w, 0.0)
            y = gw[value].to_numpy(float)
            label = f"width {fmt_value(w)}"
            if value == "frac_H":   # k/n over the runs with a final error, and its Wilson interval
                n_final = gw["n"] - gw["n_missing"]
                y = (gw["H"] / n_final.where(n_final > 0)).to_numpy(float)
                lo, hi = wilson_ci(gw["H"], n_final)
                ax.errorbar(x, y, yerr=[y - lo, hi - y], color=colors.get(w, "black"),
                            marker="o", ms=3, lw=1.2, capsize=2, label=label)
            else:
                ax.plot(gw["lambda"], y, marker="o", ms=3, color=colors.get(w, "black"), label=label)
        ax.set_title(f"η={fmt_value(eta)}", fontsize=9)
        ax.set_xlabel(LAMBDA_LABEL, fontsize=8)
        ax.set_ylabel(value.replace("frac_H", f"{H_FRACTION_LABEL} (error ≥ {H_MIN:g})"), fontsize=8)
        if value == "frac_H":
            ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
    fig.suptitle("Finite size: H fraction per width" + (", bars: 95% Wilson CI" if value == "frac_H" else ""),
                 fontsize=10)
    return fig


def h_fraction_overlay(frames: dict, *, H: float = H_MIN, n_boot: int = 200,
                       fits: dict | None = None) -> Figure:
    """P(H | λ) of every source ({label: frame}) on one axis: the H fraction (error >= ``H`` or
    diverged, over runs with a final state) with 95% Wilson intervals, and per source its logistic
    λ_c (vertical line) with the bootstrap CI shaded (``fits``: {label: critical_point row}, computed
    when absent). One curve per source and varying-axis cell."""
    fig, axes = _fig(7.5, 4.6)
    ax = axes[0, 0]
    fits = dict(fits or {})
    for (label, d), style in zip(frames.items(), SOURCE_STYLES):
        t = h_fraction_table(d, H=H)
        cells = [c for c in t.columns if c in T.DEFAULT_AXES]
        for j, (key, g) in enumerate(t.groupby(cells, dropna=False) if cells else [((), t)]):
            g = g.sort_values("lambda")
            cell = _cell_label(cells, key)
            y = g["frac"].to_numpy(float)
            ax.errorbar(g["lambda"] + 0.0, y, yerr=[y - g["ci_low"], g["ci_high"] - y],
                        color=style["color"], marker=style["marker"], ls=style["ls"], ms=4, lw=1.2,
                        capsize=2, alpha=1 if j == 0 else 0.6, gid=f"curve:{label}",
                        label=f"{label}{f' ({cell})' if cell else ''}: {int(g['n_final'].sum())} runs")
        if label not in fits:
            cp = T.critical_point(d, H=H, n_boot=n_boot, axes=())
            fits[label] = cp.iloc[0] if len(cp) else None
        fit = fits[label]
        if fit is None or not np.isfinite(fit["lambda_c_logistic"]):
            continue
        x0, lo, hi = (float(fit[c]) for c in ("lambda_c_logistic", "logistic_ci_low", "logistic_ci_high"))
        ci = f" [{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else ""
        ax.axvline(x0, color=style["color"], ls=style["ls"], lw=1.5, gid=f"lambda_c:{label}",
                   label=f"{label}: λ_c {x0:.3f}{ci}")
        if np.isfinite(lo):
            ax.axvspan(lo, hi, color=style["color"], alpha=0.12, lw=0)
    ax.axhline(0.5, color="#bbbbbb", lw=0.8, zorder=0)
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(LAMBDA_LABEL)
    ax.set_ylabel(f"P(H | λ): error ≥ {H:g} or diverged")
    ax.set_title("H fraction per λ, 95% Wilson CI; λ_c: logistic fit, 95% bootstrap CI (shaded)",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
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

# what each figure of a report draws, printed under it (report.md and report.html)
CAPTIONS = {
    "hysteresis_loop": (f"Lines: mean error over runs at the end of each λ step; bands: {HYSTERESIS_STAT} "
                        f"(std ddof 1) over runs; H leg red, L leg blue; dashed: L ≤ {L_MAX:.2f} and H ≥ {H_MIN:.2f}; "
                        "dotted hatch: the gap H − L where both legs have the step."),
    "coexistence_map": ("Bars: share of runs per branch of the final error (from the bottom: trap, H, "
                        "intermediate, L, diverged, no final error); whisker: 95% Wilson CI of the H "
                        "fraction."),
    "error_histograms": "Final error of each run; bars coloured by the branch of their bin.",
    "phase_diagram": "Colour: H fraction; each cell: runs on H / runs; hatched grey: no run there.",
    "finite_size_curves": "H fraction over runs with a final error; bars: 95% Wilson CI.",
    "spinodal_points": "Filled: crossing found; open: censored at the ladder's end; bars: means.",
}
