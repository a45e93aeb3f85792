"""Every table on small hand-made frames whose answer is known."""

import math

import numpy as np
import pandas as pd
import pytest

from dgl_ray.analysis import (bimodality, branch_table, critical_point, final_rows, gap_table,
                              hysteresis_table, km_curve, normalise, sarle_coefficient,
                              spinodal_points, spinodal_table, survival_runs, survival_table)


def run_rows(run, errors, lam=None, lams=None, start_epoch=1, step=1, **kw):
    """Rows of one run: one evaluation per error, epochs start_epoch, +step, ..."""
    lams = lams if lams is not None else [lam] * len(errors)
    return [dict(run=run, **{"lambda": l}, epoch=start_epoch + i * step, test_error=e,
                 status="completed", **kw) for i, (e, l) in enumerate(zip(errors, lams))]


def frame(*rowlists):
    return normalise(pd.DataFrame([r for rows in rowlists for r in rows]))


# -------------------------------------------------------------------------------- branch table

def test_branch_table_counts_boundaries_trap_and_diverged():
    df = frame(
        run_rows("a", [0.9, 0.10], 0.5, seed=0),       # last evaluation counts: L
        run_rows("b", [0.20], 0.5, seed=1),            # L boundary (<= 0.20)
        run_rows("c", [0.30], 0.5, seed=2),            # intermediate
        run_rows("d", [0.40], 0.5, seed=3),            # H boundary (>= 0.40)
        run_rows("e", [0.90], 0.5, seed=4),            # H and T
        [dict(run="f", **{"lambda": 0.5}, epoch=1, test_error=np.nan, status="diverged", seed=5)],
        run_rows("g", [0.05], 0.3, seed=0),
    )
    bt = branch_table(df).set_index("lambda")
    r = bt.loc[0.5]
    assert (r["n"], r["L"], r["intermediate"], r["H"], r["T"], r["n_diverged"]) == (6, 2, 1, 2, 1, 1)
    assert r["n_missing"] == 0
    assert r["frac_H"] == pytest.approx(2 / 6)
    assert bt.loc[0.3, "n"] == 1 and bt.loc[0.3, "L"] == 1


def test_branch_table_groups_by_varying_axes_only():
    df = frame(run_rows("a", [0.1], 0.5, eta=0.4, width=1.0), run_rows("b", [0.6], 0.5, eta=0.8, width=1.0))
    bt = branch_table(df)
    assert "eta" in bt.columns and "width" not in bt.columns
    assert list(bt["H"]) == [0, 1]
    assert branch_table(df, H=0.7)["H"].sum() == 0  # thresholds are parameters


# -------------------------------------------------------------------------------- gap table

def test_gap_table_by_branch_for_fresh_runs():
    df = frame(run_rows("a", [0.1], 0.5), run_rows("b", [0.2], 0.5), run_rows("c", [0.3], 0.5),
               run_rows("d", [0.6], 0.5), run_rows("e", [0.8], 0.5))
    g = gap_table(df).iloc[0]
    assert g["basis"] == "branch"
    assert (g["n_L"], g["n_H"]) == (2, 2)
    assert g["gap"] == pytest.approx(0.7 - 0.15)
    assert g["n_pairs"] == 0 and math.isnan(g["paired_gap_mean"])


def test_gap_table_paired_by_seed_w2_rule():
    rows = []
    for seed, (lo, hi) in enumerate([(0.1, 0.7), (0.2, 0.9), (0.1, 0.5)]):
        rows += run_rows(f"o{seed}", [0.3, lo], 0.4, seed=seed, origin="ordered", step=5)
        rows += run_rows(f"c{seed}", [0.8, hi], 0.4, seed=seed, origin="collapse", step=5)
    # A fresh run at the same λ does not blur the origin-based gap.
    rows += run_rows("fresh", [0.95], 0.4, seed=9)
    g = gap_table(frame(rows)).iloc[0]
    diffs = np.array([0.6, 0.7, 0.4])
    assert g["basis"] == "origin"
    assert g["n_pairs"] == 3
    assert g["paired_gap_mean"] == pytest.approx(diffs.mean())
    assert g["paired_gap_std"] == pytest.approx(diffs.std(ddof=0))
    assert g["paired_gap_max"] == pytest.approx(0.7)
    assert g["gap"] == pytest.approx(np.mean([0.7, 0.9, 0.5]) - np.mean([0.1, 0.2, 0.1]))


def test_gap_table_counts_diverged():
    df = frame(run_rows("a", [0.1], 0.5, origin="ordered", seed=0),
               [dict(run="b", **{"lambda": 0.5}, epoch=1, test_error=np.nan, status="diverged",
                     origin="collapse", seed=0)])
    g = gap_table(df).iloc[0]
    assert g["n_diverged"] == 1 and g["n_H"] == 0 and g["n_pairs"] == 0


# -------------------------------------------------------------------------------- hysteresis

def test_hysteresis_table_up_and_down_side_by_side():
    lams = [0.2, 0.3, 0.4, 0.3, 0.2]
    dirs = ["up", "up", "up", "down", "down"]
    rows = []
    for run, errs in (("r0", [0.6, 0.5, 0.5, 0.15, 0.14]), ("r1", [0.7, 0.4, 0.6, 0.25, 0.16])):
        for i, (l, d, e) in enumerate(zip(lams, dirs, errs)):
            rows.append(dict(run=run, **{"lambda": l}, epoch=i + 1, test_error=e, direction=d))
    h = hysteresis_table(frame(rows)).set_index("lambda")
    assert h.loc[0.2, "up"] == pytest.approx(0.65)
    assert h.loc[0.2, "down"] == pytest.approx(0.15)
    assert h.loc[0.2, "gap"] == pytest.approx(0.5)
    assert h.loc[0.3, "gap"] == pytest.approx(0.45 - 0.2)
    assert h.loc[0.4, "n_down"] == 0 and math.isnan(h.loc[0.4, "gap"])


# -------------------------------------------------------------------------------- spinodal

def ladder(run, errors, lams, direction, **kw):
    rows = [dict(run=run, **{"lambda": 0.35}, epoch=30, test_error=0.1, phase="init",
                 direction=direction, **kw)]
    rows += [dict(run=run, **{"lambda": l}, epoch=31 + i, test_error=e, phase="ladder",
                  direction=direction, **kw) for i, (e, l) in enumerate(zip(errors, lams))]
    return rows


UP = [0.40, 0.42, 0.44, 0.46, 0.48, 0.50, 0.52]
DOWN = [0.60, 0.58, 0.56, 0.54, 0.52]


def test_spinodal_third_consecutive_crossing_and_censoring():
    df = frame(
        # crosses at steps 1,2 then drops, then 4,5,6 -> 3rd consecutive at step 6, λ=0.52
        ladder("u1", [0.1, 0.5, 0.5, 0.3, 0.5, 0.5, 0.5], UP, "up", eta=0.4, hold=1, seed=0),
        # 0.40 exactly is not > 0.40: never crosses -> censored at the ladder's end
        ladder("u2", [0.1, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4], UP, "up", eta=0.4, hold=1, seed=1,
               ladder_end=0.70),
        ladder("d1", [0.5, 0.2, 0.2, 0.2, 0.2], DOWN, "down", eta=0.4, hold=1, seed=0),
        ladder("d2", [0.5, 0.5, 0.3, 0.3, 0.3], DOWN, "down", eta=0.4, hold=1, seed=1),
    )
    p = spinodal_points(df).set_index("run")
    assert p.loc["u1", "spinodal_lambda"] == pytest.approx(0.52) and not p.loc["u1", "censored"]
    assert p.loc["u2", "spinodal_lambda"] == pytest.approx(0.70) and p.loc["u2", "censored"]
    assert p.loc["d1", "spinodal_lambda"] == pytest.approx(0.54)
    assert p.loc["d2", "spinodal_lambda"] == pytest.approx(0.52) and p.loc["d2", "censored"]

    t = spinodal_table(df).set_index("direction")
    assert t.loc["up", "lambda_mean"] == pytest.approx(0.61)
    # the paper's published R3 spreads are population SDs (ddof 0); ddof is a parameter
    assert t.loc["up", "lambda_std"] == pytest.approx(np.std([0.52, 0.70], ddof=0))
    t1 = spinodal_table(df, ddof=1).set_index("direction")
    assert t1.loc["up", "lambda_std"] == pytest.approx(np.std([0.52, 0.70], ddof=1))
    assert (t.loc["up", "n"], t.loc["up", "n_censored"]) == (2, 1)
    assert t.loc["down", "lambda_mean"] == pytest.approx(0.53)
    assert t.loc["up", "coexistence_width"] == pytest.approx(0.61 - 0.53)
    assert t.loc["down", "coexistence_width"] == pytest.approx(0.61 - 0.53)

    # T1/T2 rule (>= 0.40): u2 now crosses at its 3rd step at 0.40.
    pi = spinodal_points(df, inclusive=True).set_index("run")
    assert pi.loc["u2", "spinodal_lambda"] == pytest.approx(0.46)


def test_spinodal_table_splits_hold_and_counts_diverged():
    rows = ladder("a", [0.5, 0.5, 0.5], UP[:3], "up", eta=0.4, hold=1)
    rows += ladder("b", [0.1, 0.5, 0.5, 0.5], UP[:4], "up", eta=0.4, hold=3)
    rows += [dict(run="b2", **{"lambda": 0.40}, epoch=31, test_error=np.nan, status="diverged",
                  phase="ladder", direction="up", eta=0.4, hold=3)]
    t = spinodal_table(frame(rows)).set_index("hold")
    assert t.loc[1, "lambda_mean"] == pytest.approx(0.44)
    assert t.loc[3, "n"] == 2 and t.loc[3, "n_diverged"] == 1 and t.loc[3, "n_censored"] == 1
    assert math.isnan(t.loc[1, "coexistence_width"])


# -------------------------------------------------------------------------------- survival

def lifetime_run(run, observe_errors, seed, **kw):
    rows = [dict(run=run, **{"lambda": 0.35}, epoch=e, test_error=0.2, phase="init", seed=seed, **kw)
            for e in (1, 2)]
    rows += [dict(run=run, **{"lambda": 0.54}, epoch=3 + i, test_error=v, phase="observe", seed=seed, **kw)
             for i, v in enumerate(observe_errors)]
    return rows


def test_survival_death_versus_survival_and_diverged():
    dies = [0.1, 0.1, 0.5, 0.5, 0.1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]  # 5-run starts at t=6
    lives = [0.1, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.12]  # only 4 in a row
    div = [0.1, 0.1, 0.1, np.nan]
    df = frame(lifetime_run("dead", dies, 0), lifetime_run("alive", lives, 1),
               lifetime_run("div", div, 2))
    df.loc[df["run"].eq("div") & df["test_error"].isna(), "status"] = "diverged"
    r = survival_runs(df).set_index("run")
    assert r.loc["dead", "died"] and r.loc["dead", "time"] == 6   # epoch of the 5th (10) − 4
    assert not r.loc["alive", "died"] and r.loc["alive", "time"] == 11
    assert r.loc["div", "died"] and r.loc["div", "diverged"] and r.loc["div", "time"] == 4
    t = survival_table(df).iloc[0]
    assert t["lambda"] == 0.54
    assert (t["n"], t["survived"], t["died"], t["n_diverged"]) == (3, 1, 2, 1)
    assert t["survival_fraction"] == pytest.approx(1 / 3)
    assert t["lifetime_mean"] == pytest.approx(5.0) and t["lifetime_min"] == 4
    assert t["final_error_mean"] == pytest.approx(np.mean([0.5, 0.12, 0.1]))


def test_survival_excludes_failed_init_and_km_curve():
    df = frame(lifetime_run("a", [0.5] * 5 + [0.5], 0, init_success=True),
               lifetime_run("b", [0.1] * 10, 1, init_success=True),
               lifetime_run("x", [0.5] * 10, 2, init_success=False))
    t = survival_table(df).iloc[0]
    assert (t["n"], t["n_excluded"], t["died"], t["survived"]) == (2, 1, 1, 1)
    km = km_curve(df)
    s = km.set_index("time")["survival"]
    assert s.loc[0.0] == 1.0
    assert s.loc[1.0] == pytest.approx(0.5)  # a dies at t=1 (5 in a row from the start)


def test_km_curve_without_deaths_stays_at_one():
    km = km_curve(frame(lifetime_run("b", [0.1] * 7, 1)))
    assert list(km["survival"]) == [1.0, 1.0] and km["time"].max() == 7


# -------------------------------------------------------------------------------- critical point

def test_critical_point_symmetric_h_fraction_and_variance_peak():
    rows, k = [], 0
    for lam, n_high in ((0.40, 0), (0.45, 2), (0.50, 5), (0.55, 8), (0.60, 10)):
        for i in range(10):
            rows += run_rows(f"r{k}", [0.8 if i < n_high else 0.1], lam, seed=i)
            k += 1
    cp = critical_point(frame(rows), n_boot=100).iloc[0]
    assert cp["lambda_c_var"] == pytest.approx(0.50)
    assert cp["lambda_c_logistic"] == pytest.approx(0.50, abs=1e-3)
    assert cp["logistic_ci_low"] <= 0.50 <= cp["logistic_ci_high"]
    assert cp["var_ci_low"] <= 0.50 <= cp["var_ci_high"]
    assert (cp["n_runs"], cp["n_lambda"]) == (50, 5)


# -------------------------------------------------------------------------------- bimodality

def test_bimodality_two_modes_versus_one():
    rng = np.random.default_rng(0)
    two = np.concatenate([rng.normal(0.1, 0.01, 50), rng.normal(0.8, 0.01, 50)])
    one = rng.normal(0.3, 0.02, 100)
    rows = [r for i, e in enumerate(two) for r in run_rows(f"t{i}", [e], 0.5)]
    rows += [r for i, e in enumerate(one) for r in run_rows(f"o{i}", [e], 0.3)]
    b = bimodality(frame(rows)).set_index("lambda")
    assert b.loc[0.5, "bimodal"] and b.loc[0.5, "dip_p"] < 0.05 and b.loc[0.5, "sarle_bimodal"]
    assert not b.loc[0.3, "bimodal"] and b.loc[0.3, "dip_p"] > 0.05 and not b.loc[0.3, "sarle_bimodal"]


def test_sarle_coefficient_known_values():
    # Two equal point masses: skew 0, excess kurtosis -2 (bias-corrected values, n=4: k = -6).
    x = [0, 0, 1, 1]
    g, k, n = 0.0, -6.0, 4
    assert sarle_coefficient(x) == pytest.approx((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))
    assert math.isnan(sarle_coefficient([0.1, 0.2, 0.3]))


def test_final_rows_takes_highest_epoch():
    df = frame([dict(run="a", **{"lambda": 0.5}, epoch=2, test_error=0.2),
                dict(run="a", **{"lambda": 0.5}, epoch=1, test_error=0.9)])
    assert final_rows(df)["test_error"].tolist() == [0.2]


# -------------------------------------------------------------------------------- spreads, ddof

def test_branch_table_ddof_is_a_parameter():
    f = frame(run_rows("a", [0.1], lam=0.5), run_rows("b", [0.3], lam=0.5))
    assert branch_table(f).iloc[0]["std_error"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert branch_table(f, ddof=0).iloc[0]["std_error"] == pytest.approx(0.1)


def test_gap_table_paired_std_ddof():
    rows = []
    for seed, (lo, hi) in enumerate([(0.1, 0.7), (0.1, 0.9)]):
        rows += run_rows(f"o{seed}", [lo], lam=0.5, origin="ordered", seed=seed)
        rows += run_rows(f"c{seed}", [hi], lam=0.5, origin="collapse", seed=seed)
    g = gap_table(frame(rows)).iloc[0]
    assert g["paired_gap_std"] == pytest.approx(0.1)  # W2: population SD
    assert gap_table(frame(rows), ddof=1).iloc[0]["paired_gap_std"] == pytest.approx(
        np.std([0.6, 0.8], ddof=1))


# -------------------------------------------------------------------------------- one gap convention

def test_hysteresis_gap_is_h_minus_l_for_sweeps_from_checkpoints():
    """Tα: up from an ordered checkpoint (L), down from a collapsed one (H): gap = down − up > 0,
    the same sign as gap_table; the signed up − down is kept as up_minus_down."""
    lams = [0.3, 0.5]
    rows = []
    for seed in range(2):
        rows += run_rows(f"u{seed}", [0.1, 0.12], lams=lams, direction="up", origin="ordered",
                         seed=seed)
        rows += run_rows(f"d{seed}", [0.9, 0.8], lams=lams[::-1], direction="down",
                         origin="collapse", seed=seed)
    f = frame(rows)
    h = hysteresis_table(f).set_index("lambda")
    g = gap_table(f).set_index("lambda")
    assert (h["H_leg"] == "down").all()
    assert h.loc[0.3, "gap"] == pytest.approx(0.8 - 0.1) == g.loc[0.3, "gap"]
    assert h.loc[0.3, "up_minus_down"] == pytest.approx(0.1 - 0.8)


def test_hysteresis_gap_of_an_in_run_loop_is_up_minus_down():
    rows = run_rows("r", [0.6, 0.5, 0.2], lams=[0.2, 0.4, 0.2], direction=None)
    for r, d in zip(rows, ["up", "up", "down"]):
        r["direction"] = d
    h = hysteresis_table(frame(rows)).set_index("lambda")
    assert h.loc[0.2, "H_leg"] == "up" and h.loc[0.2, "gap"] == pytest.approx(0.4)


# -------------------------------------------------------------------------------- new tables

def test_convergence_table_first_epoch_below_threshold():
    from dgl_ray.analysis import convergence_table
    f = frame(run_rows("a", [0.5, 0.3, 0.19, 0.1], lam=0.4),   # converges at epoch 3
              run_rows("b", [0.5, 0.15, 0.1, 0.1], lam=0.4),   # at epoch 2
              run_rows("c", [0.5, 0.5, 0.5, 0.5], lam=0.4),    # never
              run_rows("d", [0.5, 0.5, 0.1], lam=0.5, phase="main"),
              run_rows("e", [0.15], lam=0.5))                  # final error only: no history
    t = convergence_table(f).set_index("lambda")
    assert (t.loc[0.4, "n"], t.loc[0.4, "n_converged"]) == (3, 2)
    assert (t.loc[0.4, "mean"], t.loc[0.4, "min"], t.loc[0.4, "max"]) == (2.5, 2, 3)
    assert t.loc[0.5, "n_no_history"] == 1 and t.loc[0.5, "n_converged"] == 1
    assert convergence_table(f, threshold=0.12).set_index("lambda").loc[0.4, "n_converged"] == 2


def test_convergence_table_uses_the_archive_column_without_history():
    from dgl_ray.analysis import convergence_table
    f = frame(run_rows("a", [0.1], lam=0.4, convergence_epoch=12),
              run_rows("b", [0.1], lam=0.4, convergence_epoch=20))
    t = convergence_table(f).iloc[0]
    assert (t["n_converged"], t["mean"], t["n_no_history"]) == (2, 16, 0)


def test_escape_table_per_intervention():
    from dgl_ray.analysis import escape_table
    rows = run_rows("prep", [0.9], lam=0.6, phase="prep")
    for i, (lam, mult, err) in enumerate([(0.6, 0.01, 0.9), (0.6, 0.01, 0.5), (0.0, 0.1, 0.88),
                                          (0.0, 0.1, np.nan)]):
        rows += run_rows(f"iv{i}", [0.9, err], lam=lam, phase="intervention", lr_multiplier=mult,
                         start_epoch=101)
    t = escape_table(frame(rows)).set_index(["lambda", "lr_multiplier"])
    assert len(t) == 2  # the preparation run is not an intervention
    assert (t.loc[(0.6, 0.01), "n"], t.loc[(0.6, 0.01), "escaped"]) == (2, 1)
    assert t.loc[(0.6, 0.01), "final_error_mean"] == pytest.approx(0.7)
    assert (t.loc[(0.0, 0.1), "escaped"], t.loc[(0.0, 0.1), "n_missing"]) == (0, 1)
    assert escape_table(frame(rows), escape_below=0.95).set_index(
        ["lambda", "lr_multiplier"]).loc[(0.6, 0.01), "escaped"] == 2


def test_spinodal_leg_without_ladder_is_counted_and_censored_width_flagged():
    rows = ladder("u1", [0.5, 0.5, 0.5], UP[:3], "up") + ladder("d1", [0.5] * 3, DOWN[:3], "down")
    rows += [dict(run="u2", **{"lambda": 0.35}, epoch=30, test_error=0.5, phase="init",
                  direction="up")]  # failed init: no ladder step
    t = spinodal_table(frame(rows)).set_index("direction")
    assert (t.loc["up", "n"], t.loc["up", "n_excluded"]) == (1, 1)
    assert t.loc["down", "all_censored"] and t.loc["up", "width_censored"]


def test_critical_point_variance_peak_ddof_matters_with_unequal_counts():
    # λ 0.4: 2 runs {0.1, 0.5} (pop. SD 0.2, sample SD 0.283); λ 0.5: 6 runs, pop. SD 0.25, sample 0.274
    rows = run_rows("a", [0.1], lam=0.4) + run_rows("b", [0.5], lam=0.4)
    rows += [r for i, e in enumerate([0.1, 0.6] * 3) for r in run_rows(f"c{i}", [e], lam=0.5)]
    rows += [r for i in range(3) for r in run_rows(f"d{i}", [0.9], lam=0.6)]
    f = frame(rows)
    assert critical_point(f, n_boot=0).iloc[0]["lambda_c_var"] == pytest.approx(0.4)
    assert critical_point(f, n_boot=0, ddof=0).iloc[0]["lambda_c_var"] == pytest.approx(0.5)


def test_spinodal_leg_after_a_failed_init_is_excluded_and_counted():
    rows = ladder("ok", [0.5] * 3, UP[:3], "up", init_success=True)
    rows += ladder("bad", [0.1] * 3, UP[:3], "up", init_success=False)
    t = spinodal_table(frame(rows)).iloc[0]
    assert (t["n"], t["n_excluded"], t["lambda_mean"]) == (1, 1, pytest.approx(0.44))
    t = spinodal_table(frame(rows), require_init_success=False).iloc[0]
    assert (t["n"], t["n_excluded"]) == (2, 0)


def test_survival_ignores_preparation_runs_of_a_chained_sweep():
    prep = [dict(r, phase="init") for r in run_rows("prep", [0.15, 0.12], lam=0.35)]
    kid = [dict(r, phase="observe") for r in run_rows("kid", [0.1] * 6, lam=0.46, start_epoch=3)]
    failed = [dict(run="fail", **{"lambda": 0.46}, phase="observe", test_error=np.nan,
                   status="no_evaluation", init_success=False)]
    t = survival_table(frame(prep, kid, failed)).iloc[0]
    assert (t["lambda"], t["n"], t["survived"], t["n_excluded"], t["n_init_failed"]) == (0.46, 1, 1, 1, 1)
