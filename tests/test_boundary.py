"""One λ boundary fit (dgl_ray.boundary) for the adaptive searcher and critical_point."""
import math

import numpy as np
import pandas as pd
import pytest

from dgl_ray.analysis import critical_point, normalise
from dgl_ray.boundary import fit_boundary, fit_logistic, resample_within_levels


def test_the_searcher_and_critical_point_give_the_same_boundary():
    counts = {0.40: 0, 0.44: 2, 0.48: 5, 0.52: 7, 0.56: 10}           # H runs of 10 per λ
    lams = np.repeat(list(counts), 10)
    high = np.concatenate([[1.0] * k + [0.0] * (10 - k) for k in counts.values()])
    frame = normalise(pd.DataFrame([dict(run=f"r{i}", seed=i, epoch=1, status="completed",
                                         test_error=0.8 if h else 0.1, **{"lambda": lam})
                                    for i, (lam, h) in enumerate(zip(lams, high))]))
    table = critical_point(frame, n_boot=0).iloc[0]
    searcher = fit_boundary(lams, high, n_boot=0)
    assert searcher["lambda_c"] == pytest.approx(table["lambda_c_logistic"], abs=1e-12)
    assert searcher["width"] == pytest.approx(table["logistic_width"] * 2 * math.log(9), abs=1e-12)


def test_the_fit_needs_three_levels_and_both_outcomes():
    assert math.isnan(fit_logistic(np.array([0.4, 0.5]), np.array([1.0, 2.0]), np.array([4.0, 4.0]))[0])
    assert math.isnan(fit_logistic(np.array([0.4, 0.5, 0.6]), np.zeros(3), np.full(3, 4.0))[0])
    # a perfect step: the scale stops at 1/20 of the λ step instead of running to 0
    _, w = fit_logistic(np.array([0.4, 0.5, 0.6]), np.array([0.0, 0.0, 4.0]), np.full(3, 4.0))
    assert w == pytest.approx(0.1 / 20)


def test_bootstrap_keeps_each_levels_run_count():
    lams = np.array([0.4, 0.4, 0.4, 0.5, 0.6, 0.6])
    for idx in resample_within_levels(lams, 20, np.random.default_rng(0)):
        assert sorted(lams[idx]) == sorted(lams)
