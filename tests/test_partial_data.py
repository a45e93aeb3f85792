"""Every reduction is honest on partial data: a run counts as final only when its last row is final;
unfinished, errored and never-started trials are counted as missing, never as NaN-λ rows; runs of
different protocols never share a row; a damaged result.json line is warned about and counted."""
import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from tests._tiny_sweep import tiny_packed_sweep
from dgl_ray.analysis import DamagedLineWarning, load_experiment, missing_trials, normalise
from dgl_ray.analysis import tables as T
from dgl_ray.analysis.frames import run_status_of
from dgl_ray.analysis.synthetic import fake_sweep_frame

LAMS = (0.3, 0.4, 0.5, 0.6)


def _mid_sweep(cut: dict[int, int]) -> pd.DataFrame:
    """A finished fake sweep (4 λ × 6 seeds, 8 epochs) whose runs ``cut`` (run index -> epochs kept)
    stopped early: their last row says ``running``, as a sweep still running leaves them."""
    df = fake_sweep_frame(lambdas=LAMS, seeds=range(6), epochs=8)
    runs = list(dict.fromkeys(df["run"]))
    keep = pd.Series(True, index=df.index)
    for i, ep in cut.items():
        mine = df["run"].eq(runs[i])
        keep &= ~(mine & (df["epoch"] > ep))
        df.loc[mine, "status"] = "running"
    df = df[keep].copy()
    df["run_status"] = run_status_of(df).values
    return normalise(df)


# runs 0-2 at λ 0.3 stop at epochs 1, 4, 7; run 6 (λ 0.4) at 2; run 23 (λ 0.6) at 5
CUT = {0: 1, 1: 4, 2: 7, 6: 2, 23: 5}
MISSING = {0.3: 3, 0.4: 1, 0.5: 0, 0.6: 1}


@pytest.fixture(scope="module")
def mid():
    return _mid_sweep(CUT)


def _by_lambda(t, col):
    return t.groupby("lambda")[col].sum().to_dict()


def test_per_lambda_tables_count_unfinished_runs_as_missing(mid):
    bt = T.branch_table(mid)
    assert _by_lambda(bt, "n_missing") == MISSING and (bt["n"] == 6).all()
    assert (bt["L"] + bt["intermediate"] + bt["H"] == 6 - bt["lambda"].map(MISSING)).all()
    gap = T.gap_table(mid)
    assert _by_lambda(gap, "n_missing") == MISSING
    assert ((gap["n_L"] + gap["n_H"]) <= 6 - gap["lambda"].map(MISSING)).all()
    assert _by_lambda(T.branch_table(mid, per_step=True), "n_missing") == MISSING
    assert _by_lambda(T.bimodality(mid), "n_missing") == MISSING
    assert _by_lambda(T.escape_table(mid), "n_missing") == MISSING
    conv = T.convergence_table(mid)
    assert _by_lambda(conv, "n_missing") == MISSING
    assert (conv["n_converged"] <= 6 - conv["lambda"].map(MISSING)).all()
    assert T.final_error_table(mid)["n_missing"].sum() == sum(MISSING.values())
    assert T.critical_point(mid, n_boot=5)["n_missing"].sum() == sum(MISSING.values())


def test_ladders_and_lifetimes_leave_unfinished_runs_out():
    rows = []
    for run, lams, status in (("done", [0.2, 0.3, 0.4, 0.5, 0.6], "completed"), ("mid", [0.2, 0.3], "running")):
        for i, lam in enumerate(lams):
            rows.append(dict(run=run, seed=0, direction="up", phase="ladder", epoch=i + 1, test_error=0.9,
                             status=status if i == len(lams) - 1 else "running", **{"lambda": lam}))
    df = pd.DataFrame(rows)
    df["run_status"] = run_status_of(df).values
    pts = T.spinodal_points(normalise(df)).set_index("run")
    assert not pts.loc["done", "excluded"] and pts.loc["mid", "excluded"]
    assert T.spinodal_table(normalise(df)).iloc[0][["n", "n_excluded"]].tolist() == [1, 1]
    life = df.assign(phase="observe", **{"lambda": 0.5})
    sv = T.survival_table(normalise(life)).iloc[0]
    assert sv["n"] == 1 and sv["n_unfinished"] == 1 and sv["n_excluded"] == 1


def _half_written(tmp_path_factory, tmp_path):
    """The tiny packed sweep as it was mid-run: no Parquet, the first Tune trial's result.json cut after
    epoch 1 (its 2 trials unfinished), the second's never written (its 2 trials never started)."""
    src = tiny_packed_sweep(tmp_path_factory.getbasetemp() / "shared_sweeps")
    folder = tmp_path / "tiny"
    shutil.copytree(src, folder)
    (folder / "results.parquet").unlink()
    first, second = sorted(p for p in folder.iterdir() if (p / "params.json").exists())
    lines = (first / "result.json").read_text().splitlines()
    (first / "result.json").write_text(lines[0] + "\n")
    (second / "result.json").unlink()
    return folder, first


def test_a_half_written_sweep_folder(tmp_path_factory, tmp_path):
    folder, _ = _half_written(tmp_path_factory, tmp_path)
    df = load_experiment(folder)
    assert df["lambda"].notna().all() and df["run"].nunique() == 4   # never-started trials at their own λ
    counts = missing_trials(df)
    assert (counts["finished"], counts["unfinished"], counts["never_started"], counts["missing"]) == (0, 2, 2, 4)
    bt = T.branch_table(df)
    assert sorted(bt["lambda"]) == [0.36, 0.52] and (bt["n_missing"] == 2).all() and bt["L"].sum() == 0
    assert (bt["H"] == 0).all() and (bt["intermediate"] == 0).all()
    gap = T.gap_table(df)
    assert (gap["n_L"] + gap["n_H"]).sum() == 0 and gap["n_missing"].sum() == 4
    assert T.convergence_table(df)["n_missing"].sum() == 4


def test_a_damaged_line_is_warned_and_counted(tmp_path_factory, tmp_path):
    folder, first = _half_written(tmp_path_factory, tmp_path)
    good = (first / "result.json").read_text()
    (first / "result.json").write_text('{"epoch": 2, "rows": [{"test_err\n' + good)
    with pytest.warns(DamagedLineWarning, match=r"result\.json:1: damaged line"):
        df = load_experiment(folder)
    assert df.attrs["damaged_lines"] == [(str(first / "result.json"), 1)]
    assert df["epoch"].max() == 1                       # the good line is still read


def test_protocols_never_share_a_row():
    a = fake_sweep_frame(name="S1a", lambdas=(0.42,), seeds=range(3), epochs=3).assign(epochs=3)
    b = fake_sweep_frame(name="S1b", lambdas=(0.5,), seeds=range(3), epochs=5).assign(epochs=5)
    b["run"] = "b" + b["run"]
    df = normalise(pd.concat([a, b], ignore_index=True))
    fe = T.final_error_table(df)
    assert len(fe) == 2 and (fe["n"] == 3).all()
    c = b.assign(**{"lambda": 0.42})          # same λ, other length: two rows of the branch table
    bt = T.branch_table(normalise(pd.concat([a, c], ignore_index=True)))
    assert bt["epochs"].tolist() == [3, 5] and (bt["n"] == 3).all()


def test_report_says_which_lines_were_damaged_and_what_is_missing(tmp_path_factory, tmp_path, capsys):
    from dgl_ray.analysis.__main__ import main
    folder, first = _half_written(tmp_path_factory, tmp_path)
    (first / "result.json").write_text('{"epo\n' + (first / "result.json").read_text())
    with pytest.warns(DamagedLineWarning):
        assert main(["report", str(folder), "--no-figures", "--no-html", "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert f"1 damaged result.json line(s) skipped: {first / 'result.json'}:1" in out
    assert "4 trial(s) missing from the tables: 2 unfinished, 0 errored, 2 never started (0 finished)" in out
    assert "Damaged result.json lines (1" in (tmp_path / "rep" / "report.md").read_text()


def test_an_archived_failed_init_is_missing_at_its_ladder_start_not_a_nan_lambda_row(tmp_path):
    from dgl_ray.analysis import load_legacy
    (tmp_path / "R3a_config.json").write_text(json.dumps({"parameters": {
        "init_lambda": 0.35, "init_epochs": 30, "lambda_range": [0.40, 0.70, 0.02]}}))
    run = dict(direction="up", noise_rate=0.4, hold_epochs=1)
    (tmp_path / "R3a_results.json").write_text(json.dumps([
        dict(run, seed=0, init_error=0.1, history=[{"lambda": 0.4, "test_error": 0.5, "global_epoch": 31}]),
        dict(run, seed=1, history=[])]))                     # the init failed: no evaluation at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = load_legacy(tmp_path)
    bt = T.branch_table(df)
    assert bt["lambda"].notna().all() and bt.attrs["n_without_lambda"] == 0
    assert bt.set_index("lambda").loc[0.4, "n_missing"] == 1
    # a run no file places at all is left out of the rows and counted
    lost = normalise(df.assign(**{"lambda": np.where(df["seed"].eq(1), np.nan, df["lambda"])}))
    t = T.branch_table(lost)
    assert t["lambda"].notna().all() and t.attrs["n_without_lambda"] == 1


def test_the_watch_page_counts_the_same(tmp_path_factory, tmp_path, capsys):
    from dgl_ray.analysis.__main__ import main
    from dgl_ray.analysis.live import watch
    folder, _ = _half_written(tmp_path_factory, tmp_path)
    argv = ["report", str(folder), "--no-figures", "--no-html", "--out", str(tmp_path / "rep")]
    assert watch(main, argv, 1.0, folder, max_refreshes=1, sleep=lambda s: None) == 0
    out = capsys.readouterr().out
    assert "4 trial(s) missing from the tables: 2 unfinished, 0 errored, 2 never started (0 finished)" in out
    table = out.split("/branch_table ==")[1].strip().split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in table[1:]] == ["0.36", "0.52"]   # 2 λ rows, no λ-NaN row
