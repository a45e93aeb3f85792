"""The archive readers (analysis/archive/): one fake file per registered shape, and the cases of the
issue "The paper's whole archive through the public API" (each failed before the registry)."""

import json
import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

from dgl_ray.analysis import (InvalidValueWarning, SkippedFileWarning, branch_table, gap_table,
                              load_experiment, load_legacy, survival_table, write_fake_sweep)

def _archive() -> Path:
    """$DGL_SHARED/paper-results when set, else the copy in tests/data (a plain clone has it)."""
    env = os.environ.get("DGL_SHARED")
    return Path(env) / "paper-results" if env else Path(__file__).resolve().parent / "data" / "paper-results"


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, pd.DataFrame) else obj.to_csv(index=False))
    return path


def _quiet(path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_legacy(path, **kw)


def _traj(lams, errs):
    return [{"lambda": l, "error": e} for l, e in zip(lams, errs)]


# One fake file per shape: (file name, content, runs it holds).
UP, DOWN = [0.30, 0.40, 0.50], [0.50, 0.40, 0.30]
FAKES = {
    "W2 jumps from checkpoints": ("W2_results.json", [
        {"seed": s, "interventions": [{"target_lambda": 0.4, "final_gap": 0.6,
                                       "ordered": {"final_error": 0.1, "trajectory": []},
                                       "collapse": {"final_error": 0.7, "trajectory": []}}]}
        for s in range(2)], 4),
    "R3 spinodal ladders": ("R3a_results.json", [
        {"direction": "up", "noise_rate": 0.4, "hold_epochs": 1, "seed": s, "init_error": 0.1,
         "spinodal_lambda": 0.5, "history": [{"lambda": l, "test_error": 0.5} for l in UP]}
        for s in range(3)], 3),
    "T1a/T13 lifetime": ("T1a_results.json", [
        {"seed": s, "init_success": True, "init_error": 0.2, "target_lambda": 0.46, "eta": 0.4,
         "init_trajectory": [{"epoch": 50, "error": 0.2}],
         "observe_trajectory": [{"epoch": e, "error": 0.1} for e in (1, 2)]} for s in range(2)], 2),
    "T1/T2 slow spinodal": ("T1_results.json", [
        {"seed": s, "init_success": True, "lambda_up": 0.6, "collapsed": True, "eta": 0.4,
         "trajectory": [{"phase": "ladder", "lambda": l, "epoch": i + 1, "error": 0.5}
                        for i, l in enumerate(UP)]} for s in range(2)], 2),
    "Tα/Tγ sweeps from checkpoints": ("Ta1-1_results.json", [
        {"seed": s, "lambda_start": 0.3, "lambda_end": 0.5, "epochs_per_lambda": 1, "eta": 0.4,
         "checkpoint_source": f"ordered_seed0{s}_err0.130.pth", "trajectory": _traj(UP, [0.1] * 3),
         "experiment_id": f"Ta1-1-00{s}"} for s in range(2)], 2),
    "per-branch λ trajectories": ("Tb1_results.json", [
        {"seed": s, "noise_rate": 0.8, "noise_type": "symmetric", "epochs_per_lambda": 5,
         "low_error_init_error": 0.15, "high_error_init": {"error": 0.8},
         "low_error_trajectory": _traj(UP, [0.15] * 3),
         "high_error_trajectory": _traj(DOWN, [0.8, 0.7, 0.6])} for s in range(3)], 6),
    "fresh runs (S2 JSON, with error_history)": ("S2x_results.json", [
        {"experiment_id": f"S2x-{s}", "lambda": 0.5, "seed": s, "final_error": 0.3,
         "error_history": [{"epoch": 10, "error": 0.5}, {"epoch": 20, "error": 0.3}]}
        for s in range(2)], 2),
    "V1/V3/V4/Tβ2/Tα ladders by branch (CSV)": ("V1_results.csv", pd.DataFrame(
        [{"seed": s, "branch": b, "lambda": l, "error": 0.1 if b == "ordered" else 0.6}
         for s in range(2) for b in ("ordered", "collapse") for l in UP]), 4),
    "R1/R2 in-run loops (CSV)": ("R1x_results.csv", pd.DataFrame(
        [{"experiment_id": "R1x-001", "seed": 0, "step_idx": i, "direction": d, "lambda": l,
          "test_error": e} for i, (d, l, e) in enumerate(
              [("up", 0.2, 0.6), ("up", 0.3, 0.5), ("down", 0.2, 0.1)])]), 1),
    "final errors of fresh runs (S1, S2, Q1, Ta-prep CSV)": ("S1x_results.csv", pd.DataFrame(
        {"experiment_id": ["a", "b"], "lambda": [0.5, 0.5], "seed": [0, 1],
         "final_error": [0.1, 0.6]}), 2),
}


def test_every_registered_shape_has_a_fake_file_here():
    from dgl_ray.analysis.archive.registry import SHAPES
    assert {s.name for s in SHAPES} == set(FAKES)


@pytest.mark.parametrize("shape_name", sorted(FAKES))
def test_each_shape_reads_every_run(tmp_path, shape_name):
    name, content, n_runs = FAKES[shape_name]
    _write(tmp_path / name, content)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedFileWarning)
        df = load_legacy(tmp_path)
    assert set(df["source_shape"]) == {shape_name}
    assert df["run"].nunique() == n_runs
    assert df["test_error"].notna().all() and df["lambda"].notna().any()


def test_per_branch_trajectories_make_one_run_per_branch_with_its_origin(tmp_path):
    _write(tmp_path / "Tb1_results.json", FAKES["per-branch λ trajectories"][1])
    df = load_legacy(tmp_path)
    assert df.groupby("origin")["run"].nunique().to_dict() == {"collapse": 3, "ordered": 3}
    runs = df.groupby("run").first()
    assert set(runs["init_error"]) == {0.15, 0.8}  # <branch>_init_error or <branch>_init
    assert set(runs["direction"]) == {"up", "down"}  # from the order of the λ steps
    assert df["eta"].eq(0.8).all() and df["noise"].eq("symmetric").all() and df["hold"].eq(5).all()
    assert set(df["family"]) == {"Tb1"}
    g = gap_table(df).set_index("lambda")
    assert g.loc[0.5, "gap"] == pytest.approx(0.8 - 0.15)  # H (collapse) − L (ordered) > 0


# ---------------------------------------------------------------- the cases

def test_unknown_json_never_hides_its_readable_csv_twin(tmp_path):
    _write(tmp_path / "X_results.json", {"meta": {"version": 3}, "runs": "elsewhere"})
    _write(tmp_path / "X_results.csv", pd.DataFrame({"lambda": [0.4, 0.5], "seed": [0, 1],
                                                     "final_error": [0.1, 0.7]}))
    with pytest.warns(SkippedFileWarning, match="X_results.json"):
        df = load_legacy(tmp_path)
    assert df["run"].nunique() == 2
    assert [p.split("/")[-1] for p, _ in df.attrs["skipped"]] == ["X_results.json"]


def test_the_report_reads_that_csv_and_exits_0(tmp_path):
    _write(tmp_path / "a" / "X_results.json", {"meta": 1})
    _write(tmp_path / "a" / "X_results.csv", pd.DataFrame({"lambda": [0.4], "seed": [0],
                                                           "final_error": [0.1]}))
    from dgl_ray.analysis.__main__ import main  # in-process: the CLI's own entry, one import
    assert main(["report", str(tmp_path / "a"), "--out", str(tmp_path / "rep"), "--no-figures",
                 "--quiet"]) == 0
    assert "1 runs" in (tmp_path / "rep" / "report.md").read_text()


def test_eta_absent_is_nan_and_said_never_a_silent_default(tmp_path):
    _write(tmp_path / "S1z_results.csv", pd.DataFrame({"lambda": [0.4], "seed": [0],
                                                       "final_error": [0.1]}))
    df = _quiet(tmp_path)
    assert df["eta"].isna().all()
    assert any("S1z" in n and "η" in n for n in df.attrs["notes"])
    # η from a config beside the file (its η -> λ map names one η): taken, no note
    _write(tmp_path / "S1z_config.json", {"parameters": {"noise_lambda_map": {"0.8": [0.4]}}})
    df = _quiet(tmp_path)
    assert df["eta"].eq(0.8).all() and not df.attrs["notes"]


def test_failed_lifetime_init_is_counted_not_vanished(tmp_path):
    runs = [{"seed": 0, "init_success": True, "init_error": 0.2, "target_lambda": 0.46,
             "init_trajectory": [{"epoch": 50, "error": 0.2}],
             "observe_trajectory": [{"epoch": e, "error": 0.1} for e in range(1, 7)]},
            {"seed": 1, "init_success": False, "init_error": 0.5, "target_lambda": 0.46,
             "init_trajectory": [{"epoch": 50, "error": 0.5}], "observe_trajectory": []},
            {"seed": 2, "init_success": False, "init_error": None, "target_lambda": 0.46}]
    _write(tmp_path / "T1a_results.json", runs)
    df = _quiet(tmp_path)
    assert df["run"].nunique() == 3
    assert df.groupby("run")["status"].apply(lambda s: "no_evaluation" in set(s)).sum() == 2
    t = survival_table(df).iloc[0]
    assert (t["n"], t["survived"], t["n_excluded"], t["n_init_failed"]) == (1, 1, 2, 2)
    # without the init rule, the run that observed nothing is still counted (not observed)
    t = survival_table(df, require_init_success=False).iloc[0]
    assert (t["n"], t["n_excluded"], t["n_not_observed"]) == (1, 2, 2)


def test_family_labels_never_merge_two_experiments(tmp_path):
    for stem, content in (("T1a", FAKES["T1a/T13 lifetime"][1]),
                          ("T1", FAKES["T1/T2 slow spinodal"][1]),
                          ("T13", FAKES["T1a/T13 lifetime"][1]),
                          ("Tb1", FAKES["per-branch λ trajectories"][1]),
                          ("Tb2", FAKES["per-branch λ trajectories"][1]),
                          ("Ta2-3", FAKES["Tα/Tγ sweeps from checkpoints"][1])):
        _write(tmp_path / f"{stem}_results.json", content)
    df = _quiet(tmp_path)
    assert set(df["family"]) == {"T1a", "T1-spinodal", "T13", "Tb1", "Tb2", "Ta"}
    assert df.groupby("family")["run"].nunique().to_dict() == {
        "T1a": 2, "T1-spinodal": 2, "T13": 2, "Tb1": 6, "Tb2": 6, "Ta": 2}


def test_family_of_names():
    from dgl_ray.analysis.archive import family_of
    assert [family_of(s) for s in ("S1a", "exp_Q1c1", "R3b", "T1a", "T13", "T1", "Ta1-1",
                                   "Ta-prep-C", "Tb2_v3", "V3_v3", "W2")] == \
        ["S1", "Q1", "R3", "T1a", "T13", "T1", "Ta", "Ta", "Tb2", "V3", "W2"]


def test_runs_named_alike_in_one_file_stay_apart(tmp_path):
    objs = [{"seed": 0, "noise_rate": eta, "low_error_trajectory": _traj(UP, [0.1] * 3)}
            for eta in (0.4, 0.8)]
    _write(tmp_path / "Tb9_results.json", objs)
    df = _quiet(tmp_path)
    assert df["run"].nunique() == 2 and sorted(df.groupby("run")["eta"].first()) == [0.4, 0.8]


def test_bad_values_are_warned_excluded_and_counted_in_archives(tmp_path):
    _write(tmp_path / "S1q_results.csv", pd.DataFrame(
        {"lambda": ["0.4", "0.4", "0.5", "abc", "0.5"], "seed": range(5),
         "final_error": [0.1, -1, 7.5, 0.3, float("inf")]}))
    with pytest.warns(InvalidValueWarning) as rec:
        df = load_legacy(tmp_path, warn=False)
    assert len(df) == 1
    ex = {why.split(" (")[0]: n for _, why, n in df.attrs["excluded"]}
    assert ex == {"λ is not a number": 1, "error outside [0, 1] or not a number": 3}
    assert any("abc" in str(w.message) for w in rec)
    assert branch_table(df)["n"].sum() == 1


def test_bad_values_are_warned_excluded_and_counted_in_sweeps(tmp_path):
    folder = write_fake_sweep(tmp_path, name="s", lambdas=(0.3,), seeds=range(2), epochs=2)
    pq = pd.read_parquet(folder / "results.parquet")
    pq.loc[pq.index[-1], "test_error"] = 7.5
    pq.to_parquet(folder / "results.parquet", index=False)
    with pytest.warns(InvalidValueWarning, match="7.5"):
        df = load_experiment(folder / "results.parquet")
    assert len(df) == 3 and df.attrs["excluded"][0][2] == 1


# ---------------------------------------------------------------- the paper's own archive

ARCHIVE = _archive()


def test_whole_archive_every_run_read_or_reported():
    files = [p for p in ARCHIVE.rglob("*_results.*")]
    df = _quiet(ARCHIVE)
    skipped = dict(df.attrs["skipped"])
    not_read = [p for p in files if str(p) not in {str(Path(k)) for k in skipped}]
    # every results file is read, or skipped for a reason that names where its runs were read
    for p, why in skipped.items():
        assert "duplicate" in why or not p.endswith(("_results.csv", "_results.json")), (p, why)
    assert len(not_read) == 7 + 4 + 2 + 6 + 6  # S2 JSONs, S1, R1, Q1, Ta (JSON + prep CSVs)
    assert df.groupby("family")["run"].nunique().to_dict() == {
        "Q1": 300, "R1": 20, "S1": 400, "S2": 502, "Ta": 40}
    assert not df.attrs["excluded"]


def test_tb_alpha_sweeps_pair_into_a_positive_gap_by_origin():
    df = _quiet(ARCHIVE / "Ta")
    sweeps = df[df["origin"].notna()]
    g = gap_table(sweeps)
    assert (g["gap"] > 0).all() and g["basis"].eq("origin").all()
    assert set(g["hold"]) == {1, 3} and g["n_pairs"].eq(5).all()
