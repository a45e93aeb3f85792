"""critical_point says when the logistic width cannot be estimated instead of printing its bound."""

import numpy as np
import pandas as pd
import pytest

from dgl_ray.analysis import critical_point, normalise


def _sweep(h_counts: dict, n: int = 10) -> pd.DataFrame:
    """n runs per λ, the first ``h_counts[λ]`` of them on H (0.8), the rest on L (0.1)."""
    rows = []
    for lam, n_high in h_counts.items():
        rows += [dict(run=f"{lam}-{i}", seed=i, epoch=1, status="completed",
                      test_error=0.8 if i < n_high else 0.1, **{"lambda": lam}) for i in range(n)]
    return normalise(pd.DataFrame(rows))


def test_one_mixed_lambda_leaves_the_width_unidentifiable():
    # the digits case: all L up to 0.45, one mixed λ, all H above (the fit ran to its bound, 0.0025)
    cp = critical_point(_sweep({0.35: 0, 0.40: 0, 0.45: 5, 0.50: 10, 0.55: 10}), n_boot=50).iloc[0]
    assert cp["n_mixed"] == 1 and not cp["width_identifiable"]
    assert np.isnan(cp["logistic_width"]) and np.isnan(cp["width_ci_low"])
    assert cp["width_note"] == "not identifiable: 1 mixed λ (needs >= 2)"
    assert cp["lambda_c_logistic"] == pytest.approx(0.45, abs=0.01)   # λ_c itself is still placed


def test_no_mixed_lambda_is_unidentifiable_too():
    cp = critical_point(_sweep({0.40: 0, 0.45: 0, 0.50: 10, 0.55: 10}), n_boot=20).iloc[0]
    assert cp["n_mixed"] == 0 and not cp["width_identifiable"] and np.isnan(cp["logistic_width"])


def test_two_mixed_lambdas_give_a_width_with_its_bootstrap_ci():
    cp = critical_point(_sweep({0.40: 0, 0.45: 2, 0.50: 5, 0.55: 8, 0.60: 10}), n_boot=100).iloc[0]
    assert cp["n_mixed"] == 3 and cp["width_identifiable"] and cp["width_note"] == ""
    assert 0.01 < cp["logistic_width"] < 0.1
    assert cp["width_ci_low"] <= cp["logistic_width"] <= cp["width_ci_high"]
