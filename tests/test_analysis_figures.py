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
