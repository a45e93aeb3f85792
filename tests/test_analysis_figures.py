"""Each figure function makes a non-empty PNG from a small frame."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from dgl_ray.analysis import figures as F
from dgl_ray.analysis import fake_sweep_frame, normalise


def _fresh():
    a = fake_sweep_frame(lambdas=(0.3, 0.45, 0.6), seeds=range(4), epochs=3, eta=0.4)
    b = fake_sweep_frame(lambdas=(0.3, 0.45, 0.6), seeds=range(4), epochs=3, eta=0.8)
    b["run"] = "b" + b["run"]
    b["width"] = 2.0
    return normalise(pd.concat([a, b]))


def _ladders():
    rows = []
    for seed in range(3):
        for i, lam in enumerate([0.4, 0.5, 0.6, 0.7]):
            rows.append(dict(run=f"u{seed}", seed=seed, **{"lambda": lam}, epoch=i + 1, eta=0.4, hold=1,
                             direction="up", phase="ladder", test_error=0.1 if i < 2 else 0.6))
        for i, lam in enumerate([0.6, 0.5, 0.4, 0.3]):
            rows.append(dict(run=f"d{seed}", seed=seed, **{"lambda": lam}, epoch=i + 1, eta=0.4, hold=1,
                             direction="down", phase="ladder", test_error=0.6 if i < 3 else 0.2))
    return normalise(pd.DataFrame(rows))


def _lifetimes():
    rows = []
    for seed in range(4):
        errs = [0.1] * 8 if seed % 2 else [0.1, 0.1] + [0.5] * 6
        rows += [dict(run=f"t{seed}", seed=seed, **{"lambda": 0.54}, epoch=i + 1, phase="observe",
                      test_error=e) for i, e in enumerate(errs)]
    return normalise(pd.DataFrame(rows))


CASES = [
    ("hysteresis_loop", _ladders),
    ("coexistence_map", _fresh),
    ("error_histograms", _fresh),
    ("survival_curves", _lifetimes),
    ("phase_diagram", _fresh),
    ("spinodal_plot", _ladders),
    ("finite_size_curves", _fresh),
]


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_figure_png(tmp_path, name, make):
    fig = F.FIGURES[name](make())
    assert isinstance(fig, Figure)
    assert any(ax.has_data() for ax in fig.axes)
    p = F.save_png(fig, tmp_path / "sub" / f"{name}.png")
    data = p.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_figures_on_an_empty_selection_still_draw(tmp_path):
    fig = F.hysteresis_loop(_fresh())  # no ladders: says so instead of failing
    assert F.save_png(fig, tmp_path / "x.png").stat().st_size > 0


# ------------------------------------------------------------------ paper-grade figures (issue 17 item 5)

HTML_WIDTH_PX = 1200          # report.html's max-width; figures are saved at 120 dpi
MIN_PANEL_PX = 350


def _panel_widths_px(fig, dpi=120):
    """Each visible panel's width with its labels and ticks, as displayed on the HTML page (a figure
    wider than the page is scaled down), after the layout ran (saving draws it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    r = fig.canvas.get_renderer()
    fig.draw(r)
    scale = min(1.0, HTML_WIDTH_PX / (fig.get_size_inches()[0] * dpi))
    return [ax.get_tightbbox(r).width * dpi / fig.dpi * scale for ax in fig.axes
            if ax.get_visible() and ax.has_data() and ax.get_label() != "<colorbar>"]


def _q1_like(n_cells=6, lambdas=(0.42, 0.44, 0.46, 0.48, 0.5)):
    parts = []
    for i in range(n_cells):
        p = fake_sweep_frame(lambdas=lambdas, seeds=range(3), epochs=2, eta=0.4 if i % 2 else 0.8)
        p["run"] = f"c{i}-" + p["run"]
        p["width"] = [0.5, 1.0, 2.0][i // 2 % 3]
        parts.append(p)
    return normalise(pd.concat(parts))


@pytest.mark.parametrize("name", ["coexistence_map", "error_histograms", "error_trajectories",
                                  "finite_size_curves", "phase_diagram"])
def test_multi_panel_figures_wrap_into_a_readable_grid(name):
    """Q1's coexistence map was one 3240×456 strip: now at most 3 panels a row, each >= 350 px."""
    fig = F.FIGURES[name](_q1_like())
    w, h = fig.get_size_inches()
    assert w / h < 3.5, (name, w, h)
    rows = {round(ax.get_position().y0, 2) for ax in fig.axes if ax.get_visible() and ax.has_data()}
    per_row = max(sum(1 for ax in fig.axes if ax.get_visible() and ax.has_data()
                      and round(ax.get_position().y0, 2) == y) for y in rows)
    assert per_row <= 3
    assert min(_panel_widths_px(fig)) >= MIN_PANEL_PX


def test_panel_titles_print_integers_as_integers_and_do_not_overlap(tmp_path):
    a, b = _ladders(), _ladders()
    b["run"], b["hold"] = "h3" + b["run"], 3.0           # two holds: one panel each
    fig = F.hysteresis_loop(normalise(pd.concat([a, b])))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 2 and "hold=1:" in titles[0] and "hold=3:" in titles[1]
    assert not any(".0" in t for t in titles)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    r = fig.canvas.get_renderer()
    fig.draw(r)                                       # lays out with constrained layout
    for ax in fig.axes:                               # each title inside the figure, none cut
        bb = ax.title.get_window_extent(r)
        assert bb.x0 >= 0 and bb.x1 <= fig.bbox.width + 1
    assert F.fmt_value(1.0) == "1" and F.fmt_value(0.5) == "0.5" and F.fmt_value(3) == "3"


def _tα_like():
    """Tα: the up leg from ordered checkpoints is L, the down leg from collapse checkpoints is H."""
    rows = []
    for seed in range(3):
        for leg, origin, lams, e in (("up", "ordered", [0.3, 0.4, 0.5], 0.1),
                                     ("down", "collapse", [0.5, 0.4, 0.3], 0.7)):
            rows += [dict(run=f"{leg}{seed}", seed=seed, **{"lambda": lam}, epoch=i + 1, hold=1,
                          direction=leg, origin=origin, test_error=e + 0.02 * seed)
                     for i, lam in enumerate(lams)]
    return normalise(pd.DataFrame(rows))


@pytest.mark.parametrize("make,h_leg", [(_ladders, "up"), (_tα_like, "down")])
def test_hysteresis_is_the_seed_notebook_figure_with_one_colour_meaning(make, h_leg):
    """Mean ± std bands (not error bars of an unstated statistic), L/H threshold lines, H red and L
    blue whichever direction the H leg went (Tα: down)."""
    fig = F.hysteresis_loop(make())
    ax = fig.axes[0]
    legend = " ".join(t.get_text() for lg in fig.legends for t in lg.get_texts())
    assert "mean ± std" in legend and "L threshold" in legend and "H threshold" in legend
    assert not ax.containers                                  # no error bars
    bands = {c.get_label(): c for c in ax.collections}
    assert {"H ± std", "L ± std"} <= set(bands)
    from matplotlib.colors import to_hex
    assert to_hex(bands["H ± std"].get_facecolor()[0], keep_alpha=False) == F.PALETTE["H"]
    assert to_hex(bands["L ± std"].get_facecolor()[0], keep_alpha=False) == F.PALETTE["L"]
    lines = {l.get_label(): l for l in ax.lines}
    arrow = "λ↑" if h_leg == "up" else "λ↓"
    assert lines[f"H branch ({arrow})"].get_color() == F.PALETTE["H"]
    hlines = {l.get_ydata()[0]: l.get_color() for l in ax.lines if len(set(l.get_ydata())) == 1
              and l.get_xdata()[0] == 0}
    assert hlines.get(0.2) == F.PALETTE["L"] and hlines.get(0.4) == F.PALETTE["H"]
    caption = F.CAPTIONS["hysteresis_loop"]
    assert "mean ± std" in caption and "L ≤ 0.20" in caption


def test_every_figure_uses_the_one_palette():
    """L blue, H red, trap dark in every figure: the coexistence map's bars and the histograms."""
    from matplotlib.colors import to_hex
    df = fake_sweep_frame(lambdas=(0.3, 0.6), seeds=range(4), epochs=8)
    fig = F.coexistence_map(df)
    colours = {to_hex(p.get_facecolor(), keep_alpha=False) for p in fig.axes[0].patches if p.get_height() > 0}
    assert F.PALETTE["L"] in colours and ({F.PALETTE["H"], F.PALETTE["T"]} & colours)
    assert colours <= {to_hex(c) for c in F.PALETTE.values()}
    fig = F.error_histograms(df)
    colours = {to_hex(p.get_facecolor(), keep_alpha=False) for ax in fig.axes for p in ax.patches
               if p.get_height() > 0}
    assert colours <= {to_hex(F.PALETTE[b]) for b in ("L", "intermediate", "H", "T")}


def test_phase_diagram_marks_missing_cells_apart_from_the_colormap_middle():
    a = fake_sweep_frame(lambdas=(0.3, 0.45, 0.6), seeds=range(4), epochs=2, eta=0.4)
    b = fake_sweep_frame(lambdas=(0.3, 0.45), seeds=range(4), epochs=2, eta=0.8)   # no λ 0.6 at η 0.8
    b["run"] = "b" + b["run"]
    fig = F.phase_diagram(normalise(pd.concat([a, b])))
    ax = fig.axes[0]
    missing = [p for p in ax.patches if p.get_gid() == F.NO_DATA_GID]
    assert len(missing) == 1 and missing[0].get_hatch()
    assert missing[0].get_xy() == (2 - 0.5, 1 - 0.5)             # column λ 0.6, row η 0.8
    from matplotlib.colors import to_rgb
    mid = np.array(F.H_FRACTION_CMAP(0.5)[:3])
    assert np.abs(mid - np.array(to_rgb(missing[0].get_facecolor()[:3]))).sum() > 0.3
    assert any("no data" in t.get_text() for lg in fig.legends for t in lg.get_texts())
    assert any("/4" in t.get_text() for t in ax.texts)              # counts in each cell


def test_h_fractions_carry_wilson_intervals():
    lo, hi = F.wilson_ci([2], [4])
    assert lo[0] == pytest.approx(0.150, abs=1e-3) and hi[0] == pytest.approx(0.850, abs=1e-3)
    fig = F.finite_size_curves(_q1_like(n_cells=2))
    ax = fig.axes[0]
    assert ax.containers and all(c.has_yerr for c in ax.containers)   # one errorbar per width
    fig = F.coexistence_map(fake_sweep_frame(lambdas=(0.3, 0.45, 0.6), seeds=range(4), epochs=2))
    assert fig.axes[0].containers and fig.axes[0].containers[-1].has_yerr


def test_compare_overlays_both_sources_on_one_lambda_axis_with_each_lambda_c():
    from dgl_ray.analysis.compare import lambda_c_comparison
    a = fake_sweep_frame(lambdas=(0.3, 0.4, 0.45, 0.5, 0.6), seeds=range(8), epochs=2, lambda_c=0.45)
    b = fake_sweep_frame(lambdas=(0.4, 0.5, 0.55, 0.6, 0.7), seeds=range(8), epochs=2, lambda_c=0.55)
    fig = F.h_fraction_overlay({"new": a, "paper": b}, n_boot=20)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1
    ax = fig.axes[0]
    assert {c[0].get_gid() for c in ax.containers} == {"curve:new", "curve:paper"}   # the data lines
    assert {l.get_gid() for l in ax.lines} >= {"lambda_c:new", "lambda_c:paper"}
    assert all(c.has_yerr for c in ax.containers)
    assert ax.get_xlim()[0] <= 0.3 and ax.get_xlim()[1] >= 0.7           # one axis, both λ ranges
    t = lambda_c_comparison({"new": a, "paper": b}, n_boot=50)
    assert list(t["source"]) == ["new", "paper", "difference (new − paper)"]
    assert t.loc[2, "lambda_c"] == pytest.approx(t.loc[0, "lambda_c"] - t.loc[1, "lambda_c"])
    assert t.loc[2, "ci_low"] <= t.loc[2, "lambda_c"] <= t.loc[2, "ci_high"]
    assert t.loc[0, "ci_low"] <= t.loc[0, "lambda_c"] <= t.loc[0, "ci_high"]


def test_histograms_never_pool_cells_of_a_varying_axis():
    """Q1 at λ 0.44: all-L at η 0.4 beside all-H at η 0.8 would look like one bimodal λ."""
    fig = F.error_histograms(_fresh())                       # η 0.4 / width 1 and η 0.8 / width 2
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert len(titles) == 6 and all("(n=4)" in t for t in titles)
    assert "width=1, eta=0.4, λ=0.3 (n=4)" in titles
