"""The time-to-answer benchmark's pure parts (benchmarks/time_to_answer.py) on small real pools: the
estimator, the stopping rule, the grid's trial-epoch count, the replay's draws, the last line."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from benchmarks import digits_pools
from benchmarks import time_to_answer as tta
from dgl_ray.boundary import fit_boundary
from dgl_ray.early import BranchClassifier
from dgl_ray.paper import H_MIN, outcome_of

S1 = tta.POOLS / "s1.parquet"


@pytest.fixture(scope="module")
def runs():
    return tta.read_pool(S1)


def small_pool(tmp_path, seeds: int):
    """The first ``seeds`` seeds of every λ of the committed S1 pool, as a compact pool file."""
    df = pd.read_parquet(S1)
    keep = df[df["seed"] < seeds].reset_index(drop=True)
    keep.attrs = df.attrs
    path = tmp_path / "s1.parquet"
    keep.to_parquet(path, index=False)
    return path


def test_the_committed_s1_pool_is_whole_and_compact(runs):
    df = pd.read_parquet(S1)
    assert len(runs) == 550 and {r.lam for r in runs} == {round(0.36 + 0.02 * i, 2) for i in range(11)}
    assert all(r.epochs == tuple(range(1, 31)) for r in runs)
    assert df["test_error"].dtype == np.float32 and S1.stat().st_size < 1_000_000
    assert df.attrs["seconds_per_trial_epoch"] > 0


def test_estimate_agrees_with_the_boundary_fit(runs):
    lams = [r.lam for r in runs]
    highs = [tta.high(tta.outcome_of(r.final)) for r in runs]
    est = tta.estimate(lams, highs, 0.36, 0.56)
    fit = fit_boundary(lams, highs, n_boot=0)
    assert est["lambda_c"] == pytest.approx(fit["lambda_c"], abs=0.001)
    assert est["width"] == pytest.approx(fit["width"], rel=0.05)
    assert est["width_ci"][0] < est["width"] < est["width_ci"][1] and 0 < est["lambda_c_sd"] < 0.01


def test_reached_needs_both_the_sd_and_the_width_interval():
    est = {"lambda_c_sd": 0.004, "width": 0.05, "width_ci": (0.04, 0.062)}
    assert tta.reached(est, 0.005, 0.25) and tta.reached(est, 0.005, None)
    assert not tta.reached(est, 0.003, None)
    assert not tta.reached(dict(est, width_ci=(0.03, 0.06)), 0.005, 0.25)


def test_the_grid_counts_every_trial_epoch_and_stops_at_the_rule(runs):
    levels = sorted({r.lam for r in runs})
    tally = tta.Tally(tta.PerAxisPosterior([None], 0.36, 0.56), 0.01, None, tta.FullRuns(30))
    out = tta.grid(tta.ReplayPool(runs, np.random.default_rng(0)), levels, [None], tally, max_rounds=50)
    assert out.reached and out.trials % len(levels) == 0 and out.trials < len(runs)
    assert out.trial_epochs == out.trials * 30
    assert out.estimates[None]["lambda_c_sd"] <= 0.01
    # one round fewer did not meet the rule: the grid stopped at the first round that did
    assert out.trace[-2][1] > 0.01


def test_a_grid_that_uses_the_pool_up_does_not_claim_the_answer(runs):
    levels = sorted({r.lam for r in runs})
    tally = tta.Tally(tta.PerAxisPosterior([None], 0.36, 0.56), 1e-5, 0.25, tta.FullRuns(30))
    out = tta.grid(tta.ReplayPool(runs, np.random.default_rng(0)), levels, [None], tally, max_rounds=10 ** 6)
    assert not out.reached and out.trials == len(runs)
    need, extrapolated = tta.trials_needed(out, 1e-5, 0.25)
    assert extrapolated and need > len(runs)


def test_the_replay_never_hands_out_a_run_twice(runs):
    pool = tta.ReplayPool(runs, np.random.default_rng(1))
    got = [pool.take(0.46, None) for _ in range(120)]     # 50 at 0.46, then the nearest levels
    assert len({id(r) for r in got}) == 120
    assert {r.lam for r in got[:50]} == {0.46} and pool.remaining(0.46, None) == 0


def test_adaptive_search_reaches_the_answer_on_the_pool(runs):
    levels = sorted({r.lam for r in runs})
    s = tta.Setting("t", lambda rng: tta.ReplayPool(runs, rng), levels, [None], None, 0.36, 0.56, 30, {}, 1.0,
                    levels, len(runs), None)
    tally = tta.Tally(tta.PerAxisPosterior([None], 0.36, 0.56), 0.01, None, tta.FullRuns(30))
    out = tta.adaptive(tta.ReplayPool(runs, np.random.default_rng(2)), tta.new_design(s, 0, 0.01), tally, 25, len(runs))
    assert out.reached and out.trials <= len(runs) and out.trial_epochs == out.trials * 30


@pytest.mark.slow      # ≈ 10 s: the benchmark's main on the pools (the parts are tested above)
def test_the_last_line_is_the_ratio(tmp_path, capsys):
    path = small_pool(tmp_path, seeds=12)
    assert tta.main(["--parts", "a", "--repeats", "2", "--s1", str(path), "--target-sd", "0.02",
                     "--width-rel", "0.6"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"trial-epochs vs grid: \d+\.\d\d", lines[-1])
    assert any(l.split()[:1] == ["grid"] for l in lines) and any(l.split()[:1] == ["adaptive"] for l in lines)


def test_bad_options_are_one_line_errors(capsys):
    assert tta.main(["--parts", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --parts 'x'")


def test_compact_keeps_finished_runs_with_the_pool_columns():
    rows = []
    for run, status in (("a", "completed"), ("b", "running")):
        for e in (1, 2):
            rows.append({"run": run, "lambda": 0.4, "eta": 0.4, "width": 1.0, "seed": 0, "epoch": e,
                         "test_error": 0.5, "lr": 0.1, "status": status if e == 2 else "running",
                         "tune_trial": "t", "time_total_s": float(e), "train_loss": 1.0})
    out = digits_pools.compact(pd.DataFrame(rows), "cmd")
    assert list(out.columns) == digits_pools.COLUMNS and set(out["run"]) == {"a"}
    assert out["test_error"].dtype == np.float32 and out.attrs["command"] == "cmd"
    assert out.attrs["seconds_per_trial_epoch"] == pytest.approx(2.0 / 2)


def test_early_decisions_cost_the_epochs_until_the_decision(runs):
    decide = tta.EarlyDecisions({k: BranchClassifier.load("digits") for k in range(tta.FOLDS)}, 0.05, 30)
    tally = tta.Tally(tta.PerAxisPosterior([None], 0.36, 0.56), 0.005, 0.25, decide)
    sample = runs[::5]
    costs = [decide(r) for r in sample]
    for r in sample:
        tally.add(r)
    decided = [(r, c) for r, c in zip(sample, costs) if c[2]]
    assert decided and all(e < 30 and o in ("H", "not_H") for _, (e, o, _) in decided)
    assert all(c == (30, outcome_of(r.final), False) for r, c in zip(sample, costs) if not c[2])
    assert tally.trial_epochs == sum(c[0] for c in costs) < 30 * len(sample)
    assert tally.decided == len(decided)
    assert tally.wrong == sum((o == "not_H") != (r.final < H_MIN) for r, (_, o, _) in decided)


def test_the_synthetic_source_follows_the_logistic_with_real_trajectories():
    traj = [tta.Run(0.0, None, (10, 100), (0.8, e)) for e in (0.1, 0.3, 0.6, 0.9)]
    src = tta.SyntheticSource(0.5, 0.01, traj, np.random.default_rng(0))
    assert all(src.take(0.6, None).final >= H_MIN for _ in range(50))
    assert all(src.take(0.4, None).final < H_MIN for _ in range(50))
    mid = [src.take(0.5, None) for _ in range(400)]
    assert 0.4 < np.mean([r.final >= H_MIN for r in mid]) < 0.6 and all(r.lam == 0.5 for r in mid)


def test_two_dimensions_every_axis_value_must_reach_the_answer():
    runs = tta.read_pool(tta.POOLS / "eta.parquet", axis="eta")
    xs = sorted({r.x for r in runs})
    levels = sorted({r.lam for r in runs})
    assert len(runs) == 1560 and xs == [0.2, 0.3, 0.4, 0.5, 0.6] and len(levels) == 26
    s = tta.Setting("t", None, levels, xs, "eta", 0.2, 0.7, 30, {}, 1.0, levels, len(runs), None)
    tally = tta.Tally(tta.PerAxisPosterior(xs, 0.2, 0.7), 0.02, None, tta.FullRuns(30))
    out = tta.adaptive(tta.ReplayPool(runs, np.random.default_rng(3)), tta.new_design(s, 0, 0.02), tally, 25, len(runs))
    assert out.reached and set(out.estimates) == set(xs)
    assert all(e["lambda_c_sd"] <= 0.02 for e in out.estimates.values())
    # the grid's smooth estimator is the 2-D design's model: one λ_c per η, the same shape
    smooth = tta.Tally(tta.SmoothPosterior(xs, 0.2, 0.7, "eta"), 0.02, None, tta.FullRuns(30))
    g = tta.grid(tta.ReplayPool(runs, np.random.default_rng(3)), levels, xs, smooth, max_rounds=2)
    assert g.trials % (len(levels) * len(xs)) == 0 and set(g.estimates) == set(xs)


DENSE = tta.REPLAY / "s1dense.parquet"


@pytest.mark.skipif(not DENSE.exists(), reason="tests/data/digits-replay not in this checkout")
def test_the_replay_pools_hold_seeds_no_classifier_saw():
    """The replay-only pools sit outside the classifier's training folder (python -m dgl_ray.early fit reads
    every Parquet under tests/data/digits-pools), their seeds are in no training pool, λ every 0.01."""
    trained = pd.concat([pd.read_parquet(p) for p in tta.POOLS.glob("*.parquet")])
    for name in ("s1dense", "etadense"):
        df = pd.read_parquet(tta.REPLAY / f"{name}.parquet")
        assert not set(df["seed"]) & set(trained["seed"]), name
        steps = np.diff(sorted(df["lambda"].unique()))
        assert np.allclose(steps, 0.01), name
        assert df.attrs["seconds_per_trial_epoch"] > 0 and df["test_error"].dtype == np.float32
    assert digits_pools.FOLDER["s1dense"] != digits_pools.FOLDER["s1"] == tta.POOLS.name


@pytest.mark.skipif(not DENSE.exists(), reason="tests/data/digits-replay not in this checkout")
def test_the_grid_keeps_its_levels_and_the_design_gets_the_band():
    a = type("A", (), {"width_rel": 0.25, "delta": 0.001})()      # below every calibrated δ: no classifier fits
    s = tta.digits_s1(a)
    grid_only = tta.digits_s1(a, dense=None)
    assert s.levels == grid_only.levels == [round(0.36 + 0.02 * i, 2) for i in range(11)]
    assert set(s.candidates) >= {round(0.37 + 0.01 * i, 2) for i in range(17)} and grid_only.candidates == s.levels
    assert s.max_trials == 550 + 2550 and "s1dense" in s.name


def test_the_replayed_design_is_told_each_trials_cost(runs):
    """adaptive+early tells the design what a decided trial cost (its fraction of the epochs)."""
    class Half:
        decides, total_epochs = True, 30

        def __call__(self, run):
            return 15, outcome_of(run.final), True
    levels = sorted({r.lam for r in runs})
    s = tta.Setting("t", None, levels, [None], None, 0.36, 0.56, 30, {}, 1.0, levels, len(runs), None)
    d = tta.new_design(s, 0, 0.01)
    tally = tta.Tally(tta.PerAxisPosterior([None], 0.36, 0.56), 0.01, None, Half())
    tta.adaptive(tta.ReplayPool(runs, np.random.default_rng(2)), d, tally, 25, 50)
    costs = d.get_state()["costs"]
    assert sum(c for *_, c in costs) == pytest.approx(0.5 * d.n) and d.n == 50


def test_digits_pools_refuses_an_unknown_pool(capsys):
    assert digits_pools.main(["--pools", "s1,s2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pools 's1,s2'" in err[0] and "s1dense" in err[0]


def test_the_live_grid_is_charged_up_to_its_answer_only():
    """(c): the grid sweep runs all its seeds, its answer is its first n seeds per λ that meet the rule (as a
    replayed grid stops); a rule no n meets is extrapolated, as in the replay."""
    from argparse import Namespace
    from dgl_ray.tidy import run_status_of
    df = pd.read_parquet(S1)
    df["status"] = df["status"].astype(str)
    df["run_status"] = run_status_of(df)
    df = df[df["seed"] < 20]
    a = Namespace(target_sd=0.01, width_rel=None)
    epochs, n, f = tta.grid_answer(df, 0, 20, 0.36, 0.56, a)
    levels = df["lambda"].nunique()
    assert n is not None and f == 1.0 and epochs == n * levels * 30 and epochs < len(df)
    o = tta.outcome_rows(df)
    fewer = o[o["seed"] < n - 1]
    if n > 1:     # one seed fewer per λ did not meet it
        est = tta.estimate(fewer["lambda"], [tta.high(str(v)) for v in fewer["outcome"]], 0.36, 0.56)
        assert not tta.reached(est, a.target_sd, a.width_rel)
    epochs, n, f = tta.grid_answer(df, 0, 20, 0.36, 0.56, Namespace(target_sd=1e-4, width_rel=0.25))
    assert n is None and f > 1 and epochs == pytest.approx(20 * levels * 30 * f)
