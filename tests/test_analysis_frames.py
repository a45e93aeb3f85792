"""Readers: sweeps (Parquet / Tune folders) and every archive shape of PROTOCOLS.md."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from dgl_ray.analysis import (CORE_COLUMNS, SkippedFileWarning, branch_table, gap_table,
                              load_experiment, load_legacy, spinodal_points, spinodal_table,
                              survival_table, write_fake_sweep)

LAMS = (0.2, 0.4, 0.6)


# -------------------------------------------------------------------------------- sweeps

def _sweep(tmp_path, **kw):
    return write_fake_sweep(tmp_path / "storage", name="coex", lambdas=LAMS, seeds=range(3),
                            epochs=4, **kw)


def test_load_experiment_from_parquet_folder_and_file(tmp_path):
    folder = _sweep(tmp_path)
    for path in (folder, folder / "results.parquet", folder.parent):
        df = load_experiment(path)
        assert set(CORE_COLUMNS) <= set(df.columns)
        assert df["run"].nunique() == 9 and len(df) == 36
        assert set(df["experiment"]) == {"coex"}
        assert df.groupby("run")["epoch"].max().eq(4).all()


def test_load_experiment_without_parquet_reads_tune_folders(tmp_path):
    folder = _sweep(tmp_path, parquet=False)
    df = load_experiment(folder)
    assert df["run"].nunique() == 9 and len(df) == 36
    assert df["run"].str.fullmatch(r"[0-9a-f]{5}_\d{5}").all()  # Tune's trial ids
    assert "K" in df.columns and df["K"].eq(16).all()  # other config keys become columns
    assert not {"config", "hostname", "done"} & set(df.columns)  # Tune bookkeeping dropped
    ref = load_experiment(_sweep(tmp_path / "b"))
    cols = ["run", "lambda", "epoch", "test_error", "seed", "eta"]
    pd.testing.assert_frame_equal(df[cols], ref[cols], check_dtype=False)


def test_load_experiment_completes_a_partial_parquet(tmp_path):
    folder = _sweep(tmp_path, drop_from_parquet=4)
    assert pd.read_parquet(folder / "results.parquet")["run"].nunique() == 5
    df = load_experiment(folder)
    assert df["run"].nunique() == 9 and len(df) == 36


def test_load_experiment_takes_lambda_from_params_and_survives_truncated_lines(tmp_path):
    trial = tmp_path / "exp" / "train_dgl_abcde_00000_0_lambda=0.5_2026-01-01_00-00-00"
    trial.mkdir(parents=True)
    (trial / "params.json").write_text(json.dumps({"lambda": 0.5, "seed": 3, "eta": 0.4,
                                                   "model": {"name": "cnn", "width": 8}}))
    lines = [json.dumps({"epoch": e, "test_error": 0.5 - 0.1 * e, "trial_id": "abcde_00000",
                         "status": "running"}) for e in (1, 2)]
    (trial / "result.json").write_text("\n".join(lines) + '\n{"epoch": 3, "test_err')
    df = load_experiment(tmp_path / "exp")
    assert len(df) == 2 and df["lambda"].eq(0.5).all() and df["seed"].eq(3).all()
    assert df["model.name"].eq("cnn").all()
    assert set(df["experiment"]) == {"exp"}


def test_diverged_trial_is_counted(tmp_path):
    folder = _sweep(tmp_path, diverged=[(0.6, 1)])
    bt = branch_table(load_experiment(folder)).set_index("lambda")
    assert bt.loc[0.6, "n"] == 3 and bt.loc[0.6, "n_diverged"] == 1


def test_load_experiment_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        load_experiment(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        load_experiment(tmp_path / "empty")


# -------------------------------------------------------------------------------- archive shapes

def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def _load_quiet(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedFileWarning)  # none expected
        return load_legacy(path)


def test_r3_json_with_config(tmp_path):
    cfg = {"experiment": "exp_R3_spinodal", "parameters": {
        "init_lambda": 0.35, "init_epochs": 30, "collapse_threshold": 0.4, "collapse_sustain": 3,
        "lambda_range": [0.40, 0.70, 0.02], "noise_rates": [0.4], "hold_types": ["short"],
        "seeds": [0, 1]}}
    _write(tmp_path / "R3a_config.json", cfg)
    runs = [
        {"direction": "up", "noise_rate": 0.4, "hold_type": "short", "hold_epochs": 1, "seed": 0,
         "spinodal_lambda": 0.44, "init_error": 0.15,
         "history": [{"lambda": 0.40, "test_error": 0.45, "global_epoch": 31},
                     {"lambda": 0.42, "test_error": 0.5, "global_epoch": 32},
                     {"lambda": 0.44, "test_error": 0.6, "global_epoch": 33}]},
        {"direction": "up", "noise_rate": 0.4, "hold_type": "short", "hold_epochs": 1, "seed": 1,
         "spinodal_lambda": 0.70, "init_error": 0.14,
         "history": [{"lambda": 0.40, "test_error": 0.2, "global_epoch": 31},
                     {"lambda": 0.42, "test_error": 0.2, "global_epoch": 32}]},
    ]
    _write(tmp_path / "R3a_results.json", runs)
    df = _load_quiet(tmp_path)
    assert df.attrs["skipped"] == []
    init = df[df["phase"] == "init"]
    assert init["lambda"].eq(0.35).all() and init["epoch"].eq(30).all()
    lad = df[df["phase"] == "ladder"]
    assert len(lad) == 5 and lad["hold"].eq(1).all() and lad["direction"].eq("up").all()
    p = spinodal_points(df).set_index("seed")
    assert p.loc[0, "spinodal_lambda"] == pytest.approx(0.44)
    assert p.loc[1, "censored"] and p.loc[1, "spinodal_lambda"] == pytest.approx(0.70)  # config end
    # The paper's own value, kept beside ours, agrees.
    paper = df.groupby("seed")["paper_spinodal"].first()
    assert np.allclose(p["spinodal_lambda"].sort_index(), paper.sort_index())
    assert spinodal_table(df)["n_censored"].tolist() == [1]


def test_t1_t2_json(tmp_path):
    def traj(errs, lams):
        return ([{"phase": "init", "lambda": 0.35, "epoch": e, "error": 0.2} for e in (1, 2)] +
                [{"phase": "ladder", "lambda": l, "epoch": i + 1, "error": e}
                 for i, (e, l) in enumerate(zip(errs, lams))])
    _write(tmp_path / "T1_results.json", [
        {"seed": 0, "init_error": 0.2, "init_success": True, "lambda_up": 0.58, "collapsed": True,
         "final_lambda": 0.58, "final_error": 0.5, "eta": 0.4,
         "trajectory": traj([0.3, 0.4, 0.4, 0.4], [0.54, 0.56, 0.58, 0.60])}])
    _write(tmp_path / "T2_results.json", [
        {"seed": 0, "init_error": 0.6, "init_success": True, "lambda_down": 0.40, "recovered": True,
         "final_lambda": 0.40, "final_error": 0.2, "eta": 0.4,
         "trajectory": traj([0.5, 0.2, 0.2, 0.2], [0.46, 0.44, 0.42, 0.40])}])
    df = _load_quiet(tmp_path)
    assert set(df["direction"]) == {"up", "down"}
    t1 = df[df["experiment"] == "T1"].sort_values("epoch")
    assert t1["epoch"].tolist() == [1, 2, 3, 4, 5, 6]  # ladder epochs made global after init
    assert t1["phase_epoch"].tolist() == [1, 2, 1, 2, 3, 4]
    p = spinodal_points(df, inclusive=True).set_index("direction")  # T1/T2 rule: >= / <=
    assert p.loc["up", "spinodal_lambda"] == pytest.approx(0.60)
    # T1/T2's down rule is <= 0.20 (pass down=0.20); the paper stored its own values beside.
    p = spinodal_points(df, inclusive=True, down=0.20).set_index("direction")
    assert p.loc["down", "spinodal_lambda"] == pytest.approx(0.40)


def test_t1a_t13_json_survival(tmp_path):
    runs = []
    for seed, obs in enumerate([[0.1] * 6, [0.1, 0.5, 0.5, 0.5, 0.5, 0.5]]):
        runs.append({"seed": seed, "init_error": 0.2, "init_success": True,
                     "lifetime": None if seed == 0 else 2, "censored": seed == 0,
                     "final_error": obs[-1], "target_lambda": 0.54, "eta": 0.4,
                     "init_trajectory": [{"epoch": e, "error": 0.2} for e in (10, 20)],
                     "observe_trajectory": [{"epoch": i + 1, "error": e} for i, e in enumerate(obs)]})
    _write(tmp_path / "T13_results.json", runs)
    df = _load_quiet(tmp_path)
    assert df[df["phase"] == "init"]["lambda"].isna().all()  # the file does not say: not assumed
    _write(tmp_path / "T13_config.json", {"parameters": {"init_lambda": 0.35}})
    df = _load_quiet(tmp_path)
    assert df[df["phase"] == "init"]["lambda"].eq(0.35).all()
    t = survival_table(df).iloc[0]
    assert t["lambda"] == 0.54 and (t["n"], t["survived"], t["died"]) == (2, 1, 1)
    assert t["lifetime_mean"] == 2  # matches the archive's own lifetime


def test_w2_json_paired_gaps(tmp_path):
    data = []
    for seed, (lo, hi) in enumerate([(0.12, 0.80), (0.13, 0.79), (0.13, 0.78)]):
        ivs = [{"target_lambda": lam,
                "ordered": {"init_error": 0.13, "final_error": lo,
                            "trajectory": [{"epoch": 5, "error": 0.2}, {"epoch": 30, "error": lo}]},
                "collapse": {"init_error": 0.8, "final_error": hi,
                             "trajectory": [{"epoch": 5, "error": 0.85}, {"epoch": 30, "error": hi}]},
                "final_gap": hi - lo} for lam in (0.40, 0.50)]
        data.append({"seed": seed, "interventions": ivs})
    _write(tmp_path / "W2_results.json", data)
    df = _load_quiet(tmp_path)
    assert df["run"].nunique() == 12 and set(df["origin"]) == {"ordered", "collapse"}
    g = gap_table(df).set_index("lambda")
    diffs = np.array([0.68, 0.66, 0.65])
    assert g.loc[0.4, "n_pairs"] == 3
    assert g.loc[0.4, "paired_gap_mean"] == pytest.approx(diffs.mean())
    assert g.loc[0.4, "paired_gap_std"] == pytest.approx(diffs.std())
    assert g.loc[0.5, "paired_gap_max"] == pytest.approx(0.68)


@pytest.mark.parametrize("name,labels", [
    ("V1_results.csv", ("ordered", "collapse")),
    ("V3_v3_results.csv", ("ordered", "collapse")),
    ("V4_results.csv", ("ordered", "collapse")),
    ("Tb2_v3_results.csv", ("low_error", "high_error")),
])
def test_branch_csvs(tmp_path, name, labels):
    rows = []
    for seed in range(3):
        for lam in (0.30, 0.50, 0.70):
            rows.append({"seed": seed, "branch": labels[0], "lambda": lam, "error": 0.10})
            rows.append({"seed": seed, "branch": labels[1], "lambda": lam, "error": 0.60 + 0.01 * seed})
    pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
    df = _load_quiet(tmp_path)
    assert df["run"].nunique() == 6
    assert df.groupby("run")["epoch"].apply(list).map(lambda e: e == [1, 2, 3]).all()
    g = gap_table(df).set_index("lambda")
    assert g.loc[0.5, "basis"] == "origin" and g.loc[0.5, "n_pairs"] == 3
    assert g.loc[0.5, "gap"] == pytest.approx(0.51)


def test_unknown_files_are_reported_not_skipped_in_silence(tmp_path):
    for stem in ("S1x", "Zq"):
        pd.DataFrame({"seed": [0], "lambda": [0.5], "final_error": [0.3]}).to_csv(
            tmp_path / f"{stem}_results.csv", index=False)
    (tmp_path / "notes.txt").write_text("hello")
    _write(tmp_path / "odd.json", {"something": 1})
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    _write(tmp_path / "Z9_config.json", {"parameters": {"x": 1}})
    with pytest.warns(SkippedFileWarning) as rec:
        df = load_legacy(tmp_path)
    skipped = {p.split("/")[-1]: why for p, why in df.attrs["skipped"]}
    assert set(skipped) == {"notes.txt", "odd.json", "other.csv", "Z9_config.json"}
    assert "unknown" in skipped["odd.json"] and "config without" in skipped["Z9_config.json"]
    assert len(rec) == 4 and any("notes.txt" in str(w.message) for w in rec)
    # S1 runs are 100 epochs long (PROTOCOLS); an unknown family's run length is not assumed.
    assert len(df) == 2
    assert df.set_index("experiment").loc["S1x", "epoch"] == 100
    assert np.isnan(df.set_index("experiment").loc["Zq", "epoch"])
    assert df["eta"].isna().all()  # no η in the files: NaN and a note, never a silent 0.4
    assert len(df.attrs["notes"]) == 2 and all("η not given" in n for n in df.attrs["notes"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_legacy(tmp_path, eta_default=0.4)["eta"].eq(0.4).all()  # stated by the caller


def test_load_legacy_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        load_legacy(tmp_path / "missing")


def test_storage_with_two_sweeps_and_load_dispatch(tmp_path):
    from dgl_ray.analysis import is_sweep_path, load

    storage = tmp_path / "storage"
    write_fake_sweep(storage, name="a", lambdas=(0.3,), seeds=range(2), epochs=2)
    write_fake_sweep(storage, name="b", lambdas=(0.5,), seeds=range(2), epochs=2, parquet=False)
    df = load(storage)
    assert is_sweep_path(storage) and set(df["experiment"]) == {"a", "b"} and len(df) == 8
    pd.DataFrame({"seed": [0], "lambda": [0.5], "final_error": [0.3]}).to_csv(
        tmp_path / "S1q_results.csv", index=False)
    assert not is_sweep_path(tmp_path / "S1q_results.csv")
    assert load(tmp_path / "S1q_results.csv")["family"].tolist() == ["S1"]
