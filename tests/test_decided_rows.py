"""Decided runs (--decide-early) in every table: a branch, never a final error.

The frame is a real sweep's rows (the results.parquet of tests/data/sweeps-2026-12/grid, written by the
runner: 2 λ × 3 seeds, 3 epochs, 4 finished, 2 never started) in which one member stopped at epoch 2
with status "decided" and a decided branch, as the population writes a decided member's last row
(interfaces §1), read back through load_experiment like any sweep. Its error at the decision (0.516)
lies on the H side while its decided branch is not_H: a table that took it as a final error would
count it as H."""
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dgl_ray.analysis import figures, tables
from dgl_ray.analysis.report import build_report
from dgl_ray.tidy import final_rows, load_experiment, missing_trials, n_decided, outcome_rows

GRID = Path(__file__).parent / "data" / "sweeps-2026-12" / "grid"
DECIDED_RUN = "6ec4f3a5_000"       # λ 0.3, seed 1: 0.909, 0.516, (0.375 at epoch 3, dropped)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    sweep = tmp_path_factory.mktemp("decided") / "grid"
    shutil.copytree(GRID, sweep, ignore=shutil.ignore_patterns("dgl_trainable_*"))
    rows = pd.read_parquet(sweep / "results.parquet")
    mine = rows["run"].astype(str).eq(DECIDED_RUN)
    rows = rows[~(mine & rows["epoch"].eq(3))].reset_index(drop=True)
    last = rows["run"].astype(str).eq(DECIDED_RUN) & rows["epoch"].eq(2)
    rows["status"] = rows["status"].astype(object)
    rows.loc[last, "status"] = "decided"
    rows["decided_branch"] = pd.Series(np.where(last, "not_H", None), index=rows.index, dtype=object)
    rows["p_branch"] = np.where(last, 0.993, np.nan)
    rows.to_parquet(sweep / "results.parquet")
    return sweep


@pytest.fixture(scope="module")
def frame(sweep) -> pd.DataFrame:
    return load_experiment(sweep)


def test_the_decided_run_has_its_own_status(frame):
    mine = frame[frame["run"] == DECIDED_RUN]
    assert set(mine["run_status"]) == {"decided"} and mine["status"].iloc[-1] == "decided"
    assert "decided" in frame["status"].cat.categories and "decided" in frame["run_status"].cat.categories
    assert n_decided(frame) == 1
    counts = missing_trials(frame)
    assert counts["decided"] == 1 and counts["finished"] == 3 and counts["missing"] == 2   # 2 never started


def test_final_rows_never_return_a_decided_run(frame):
    f = final_rows(frame)
    assert DECIDED_RUN not in set(f["run"]) and len(f) == 3


def test_outcome_rows_count_the_decided_branch(frame):
    o = outcome_rows(frame).set_index("run")
    assert len(o) == 4                                            # 3 finished + 1 decided
    assert o.loc[DECIDED_RUN, "outcome"] == "not_H" and bool(o.loc[DECIDED_RUN, "decided"])
    assert o.loc[DECIDED_RUN, "epoch"] == 2                       # the decision, not a final epoch
    assert o.loc["1bf9bbf9_001", "outcome"] == "T"                # 0.879: the trap, a kind of H
    assert o.loc["1bf9bbf9_000", "outcome"] == "H" and not o["decided"].drop(DECIDED_RUN).any()
    assert list(o["outcome"].cat.categories) == ["not_H", "H", "T"]


def test_branch_table_counts_decided_runs_in_n_and_frac_h_only(frame):
    b = tables.branch_table(frame).set_index("lambda")
    lo = b.loc[0.3]
    # seed 0 final 0.428 (H), seed 1 decided not_H at 0.516
    assert (lo["n"], lo["decided"], lo["decided_H"], lo["H"], lo["intermediate"], lo["n_missing"]) == (2, 1, 0, 1, 0, 0)
    assert lo["frac_H"] == pytest.approx(1 / 2)
    assert lo["mean_error"] == pytest.approx(0.428212, abs=1e-6)  # the decided run's 0.516 is no final error
    assert lo["frac_L"] == 0
    hi = b.loc[0.6]
    assert (hi["n"], hi["decided"], hi["H"], hi["T"], hi["frac_H"]) == (2, 0, 2, 2, 1.0)


def test_h_fraction_and_map_count_the_decided_branch(frame):
    h = figures.h_fraction_table(frame).set_index("lambda")
    assert (h.loc[0.3, "k"], h.loc[0.3, "n_final"]) == (1, 2)
    legend = lambda fig: {t.get_text() for leg in fig.legends for t in leg.get_texts()}
    assert {"decided H early", "decided not_H early"} <= legend(figures.coexistence_map(frame))
    traj = figures.error_trajectories(frame)
    assert "decided early (its branch's colour)" in legend(traj)
    assert any("decided 1" in ax.get_title() for ax in traj.axes)
    # the median line of the panel with the decided run stops where that run stopped; the survivors' goes on dashed
    assert "median of the runs still training (others decided or unfinished)" in legend(traj)
    ax = next(ax for ax in traj.axes if "decided 1" in ax.get_title())
    whole = next(l for l in ax.lines if l.get_label() == "median")
    rest = next(l for l in ax.lines if l.get_label() == "median of the runs still training")
    assert max(whole.get_xdata()) == 2 == min(rest.get_xdata()) and rest.get_linestyle() == "--"


def test_critical_point_fits_the_decided_branch_but_not_its_error(frame):
    cp = tables.critical_point(frame, n_boot=20).iloc[0]
    assert cp["n_decided"] == 1 and cp["n_runs"] == 4 and cp["n_missing"] == 0
    # the fit sees 1 of 2 H at λ 0.3 (the decided run as not_H; its 0.516 would have made it H): a mixed λ
    assert cp["n_mixed"] == 1


def test_the_comparison_of_two_sweeps_fits_decided_branches_too(frame):
    from dgl_ray.analysis.compare import lambda_c_comparison
    lc = lambda_c_comparison({"a": frame, "b": frame}, n_boot=10)
    assert list(lc["n_runs"][:2]) == [4, 4] and list(lc["n_mixed"][:2]) == [1, 1]


def test_tables_of_final_errors_leave_decided_runs_out_and_say_so(frame):
    for t in (tables.final_error_table(frame), tables.bimodality(frame), tables.convergence_table(frame),
              tables.gap_table(frame), tables.survival_runs(frame), tables.escape_table(frame)):
        assert t.attrs["n_decided"] == 1
    fe = tables.final_error_table(frame)
    assert fe["n"].sum() == 3 and fe["n_missing"].sum() == 0      # the decided run: neither final nor missing
    assert DECIDED_RUN not in set(tables.survival_runs(frame)["run"])


def test_report_says_how_many_runs_were_decided(frame, tmp_path):
    rep = build_report(frame, tmp_path, figures=False, n_boot=20)
    assert "1 runs decided early (--decide-early" in rep.markdown
    assert "1 decided early" in rep.markdown           # the section's runs and the tables' notes
    assert "0.516" not in rep.tables[next(k for k in rep.tables if k.endswith("branch_table"))].to_string()


def test_the_report_command_counts_decided_runs_apart_from_missing_ones(sweep, tmp_path, capsys):
    from dgl_ray.analysis.__main__ import main
    assert main(["report", str(sweep), "--out", str(tmp_path), "--no-figures", "--n-boot", "10", "--no-html"]) == 0
    assert "2 trial(s) missing from the tables: 0 unfinished, 0 errored, 2 never started (3 finished, 1 decided " \
           "early)" in capsys.readouterr().out


def test_trackers_never_log_a_decided_error_as_test_error():
    from dgl_ray.tune.trackers import measured
    row = {"status": "decided", "decided_branch": "not_H", "p_branch": 0.99, "test_error": 0.05, "epoch": 9}
    assert measured(row, {}) == {"test_error_at_decision": 0.05, "decided_H": 0.0, "p_branch": 0.99}
    assert measured({**row, "status": "running"}, {}) == {"test_error": 0.05, "p_branch": 0.99}


def test_the_progress_line_counts_a_decided_member_as_done_but_not_as_a_final_error():
    import io
    from types import SimpleNamespace as NS
    from dgl_ray.tune.progress import ProgressLine
    buf = io.StringIO()
    g = ProgressLine(total=1, interval=0, stream=buf, members=3)
    t = NS(trial_id="g0", config={}, last_result={}, status="RUNNING")
    g.on_trial_result(0, [t], t, {"run": "g0_000", "status": "completed", "test_error": 0.1, "lambda": 0.3, "seed": 0})
    g.on_trial_result(0, [t], t, {"run": "g0_001", "status": "decided", "decided_branch": "H", "test_error": 0.95,
                                  "lambda": 0.6, "seed": 0})
    g.print_line([t])
    line = buf.getvalue()
    assert "done 2/3 trials (decided early 1)" in line and "0.950" not in line and "worst 0.100" in line
