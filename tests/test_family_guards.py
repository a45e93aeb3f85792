"""Protocol guards of the families, on hand-made result frames (no training, no Ray)."""
import math

import pandas as pd

from dgl_ray.sweeps import spinodal
from dgl_ray.sweeps._common import prep_table, print_prep_counts


def _ladder(run, direction, init_err, errors, lams, eta=0.8, hold=1, seed=0):
    rows = [dict(run=run, epoch=1, phase="init", direction=None, **{"lambda": 0.35 if direction == "up" else 0.65},
                 test_error=init_err)]
    for i, (lam, e) in enumerate(zip(lams, errors)):
        rows.append(dict(run=run, epoch=2 + i, phase="ladder", direction=direction, test_error=e, **{"lambda": lam}))
    for r in rows:
        r.update(eta=eta, hold=hold, seed=seed, status="completed", ladder_end=lams[-1])
    return rows


UP = [0.40, 0.42, 0.44, 0.46, 0.48, 0.50]
DOWN = [0.30, 0.28, 0.26, 0.24, 0.22, 0.20]


def _frame():
    rows = []
    # an up ladder from an already collapsed init: "crosses" at the 3rd step, the earliest possible
    rows += _ladder("a", "up", 0.70, [0.7] * 6, UP, seed=0)
    # an up ladder from an ordered init: crosses at 0.48
    rows += _ladder("b", "up", 0.10, [0.1, 0.1, 0.5, 0.6, 0.7, 0.8], UP, seed=1)
    # down ladders from collapsed inits that never recover: censored at 0.20
    rows += _ladder("c", "down", 0.88, [0.88] * 6, DOWN, seed=0)
    rows += _ladder("d", "down", 0.89, [0.89] * 6, DOWN, seed=1)
    return pd.DataFrame(rows)


def test_spinodal_leaves_out_ladders_from_the_wrong_state(capsys):
    t = spinodal.summary(_frame())
    out = capsys.readouterr().out
    assert "1 of 4 ladders left out" in out and "1 up ladders from an init error > 0.3" in out
    up = t[t["direction"] == "up"].iloc[0]
    assert up["n"] == 1 and up["n_rejected"] == 1 and math.isclose(up["lambda_mean"], 0.48)
    # without the guard the collapsed start would pull λ↑ to the earliest detection, 0.44
    from dgl_ray.analysis import spinodal_table
    raw = spinodal_table(_frame())
    assert math.isclose(raw[raw["direction"] == "up"]["lambda_mean"].iloc[0], (0.44 + 0.48) / 2)


def test_width_from_all_censored_down_ladders_is_a_bound_not_a_measurement():
    t = spinodal.guarded_table(_frame())
    assert t["coexistence_width"].isna().all()
    assert math.isclose(t["width_at_least"].iloc[0], 0.48 - 0.20)
    assert (t["note"] == "all λ↓ censored: width is a bound").all()


def test_width_is_a_measurement_when_both_directions_cross():
    df = _frame()
    rec = _ladder("e", "down", 0.9, [0.9, 0.9, 0.2, 0.2, 0.2, 0.2], DOWN, seed=2)
    df = pd.concat([df[~df["run"].isin(["c", "d"])], pd.DataFrame(rec)])
    t = spinodal.guarded_table(df)
    assert math.isclose(t["coexistence_width"].iloc[0], 0.48 - 0.22) and t["width_at_least"].isna().all()
    assert (t["note"] == "").all()


def _prep(run, branch, err, plan_id, accept, select=None):
    return dict(run=run, epoch=30, role="prep", branch=branch, test_error=err, plan_id=plan_id, accept=accept,
                select=select, eta=0.4, phase="init", status="completed", **{"lambda": 0.3})


def test_prep_table_counts_every_rejected_preparation_run(capsys):
    rows = [_prep("p0", "ordered", 0.10, "p0000", "<0.2"),
            _prep("p1", "ordered", 0.35, "p0001", "<0.2"),                  # fails the rule
            _prep("p2", "collapse", 0.90, "p0002", "none", "best 1"),
            _prep("p3", "collapse", 0.80, "p0003", "none", "best 1"),      # not the best 1
            dict(run="k0", epoch=3, role="child", parent="p0000", test_error=0.1, plan_id="c0000_000"),
            dict(run="k1", epoch=3, role="child", parent="p0002", test_error=0.9, plan_id="c0002_000")]
    t = prep_table(pd.DataFrame(rows)).set_index("branch")
    assert t.loc["ordered", ["n_prep", "kept", "rejected_rule", "rejected_selection"]].tolist() == [2, 1, 1, 0]
    assert t.loc["collapse", ["n_prep", "kept", "rejected_rule", "rejected_selection"]].tolist() == [2, 1, 0, 1]
    print_prep_counts(pd.DataFrame(rows))
    out = capsys.readouterr().out
    assert "branch=ordered eta=0.4: 2 run, 1 kept, 1 rejected (1 by the rule <0.2" in out
