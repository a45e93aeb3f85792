"""Every sweep family end to end at a tiny size (digits, 2 epochs), one Ray instance for the module."""
import pytest

from dgl_ray.analysis import load_experiment

from tests._sweep_helpers import TINY, finals, parquet, run_family


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    import ray
    from dgl_ray.tune.runner import init_ray
    init_ray(None, num_cpus=2)
    yield
    ray.shutdown()


def _check(tmp_path, name, n_runs):
    df = parquet(tmp_path, name)
    assert df["run"].nunique() == n_runs
    assert not df.duplicated(["run", "epoch"]).any()
    tidy = load_experiment(tmp_path / name)           # the analysis reads it unchanged
    assert tidy["run"].nunique() == n_runs
    for col in ("family", "experiment", "eta", "seed", "lambda", "epoch", "test_error", "status", "phase"):
        assert col in tidy.columns and tidy[col].notna().any(), col
    return df


def test_coexistence(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.3:0.6:0.3", "--n", "1", *TINY) == 0
    df = _check(tmp_path, "coexistence", 2)
    assert sorted(finals(df)["lambda"].round(6)) == [0.3, 0.6]
    assert (finals(df)["epoch"] == 2).all() and (finals(df)["status"] == "completed").all()
    out = capsys.readouterr().out
    assert "results: " in out and "results.parquet" in out and "frac_H" in out


def test_coexistence_adaptive(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.2,0.7", "--adaptive", "5", "--adaptive-n0", "1",
                      "--adaptive-step", "0.05", *TINY) == 0
    df = _check(tmp_path, "coexistence", 5)
    assert "adaptive: λ_c" in capsys.readouterr().out
    assert set(finals(df)["lambda"].round(6)) <= {round(0.2 + 0.05 * k, 6) for k in range(11)}   # on the step grid


@pytest.mark.slow          # ≈ 27 s on the shared 2-core machine (load 14)
def test_coexistence_adaptive_continuous(tmp_path, capsys):
    """--adaptive-n0 0 --adaptive-step 0: no initial design, λ continuous in the --lambdas range."""
    assert run_family("coexistence", tmp_path, "--lambdas", "0.2,0.7", "--adaptive", "8", "--adaptive-n0", "0",
                      "--adaptive-step", "0", *TINY) == 0
    df = _check(tmp_path, "coexistence", 8)
    lams = finals(df)["lambda"]
    assert lams.between(0.2, 0.7).all() and lams.nunique() >= 4 and finals(df)["seed"].nunique() == 8
    assert "adaptive: 8 runs with an outcome" in capsys.readouterr().out


@pytest.mark.slow          # ≈ 26 s on the shared 2-core machine (load 14)
def test_scan_adaptive_is_two_dimensional(tmp_path, capsys):
    assert run_family("scan", tmp_path, "--lambdas", "0.2,0.7", "--etas", "0.2,0.6", "--adaptive", "6", *TINY) == 0
    df = _check(tmp_path, "scan", 6)
    assert set(finals(df)["eta"].round(6)) == {0.2, 0.6} and finals(df)["lambda"].between(0.2, 0.7).all()
    out = capsys.readouterr().out
    assert "adaptive: λ_c at eta 0.2 = " in out and "adaptive: λ_c at eta 0.6 = " in out


def test_bimodality(tmp_path):
    assert run_family("bimodality", tmp_path, "--lambdas", "0.5", "--n", "2", *TINY) == 0
    _check(tmp_path, "bimodality", 2)


def test_scan(tmp_path):
    assert run_family("scan", tmp_path, "--lambdas", "0.3", "--etas", "0.2,0.6", "--n", "1", *TINY) == 0
    df = _check(tmp_path, "scan", 2)
    assert sorted(df["eta"].unique()) == [0.2, 0.6]


def test_finite_size(tmp_path):
    assert run_family("finite_size", tmp_path, "--lambdas", "0.4", "--widths", "0.5,1", "--n", "1", *TINY) == 0
    df = _check(tmp_path, "finite_size", 2)
    assert sorted(df["width"].unique()) == [0.5, 1.0]


def test_schedules(tmp_path):
    assert run_family("schedules", tmp_path, "--kinds", "quench-up,ramp-down", "--quench-at", "1", "--n", "1",
                      *TINY) == 0
    df = _check(tmp_path, "schedules", 2)
    q = df[df["schedule_kind"] == "quench-up"].sort_values("epoch")
    assert list(q["lambda"].round(6)) == [0.35, 0.6]


def test_hysteresis_loop(tmp_path):
    assert run_family("hysteresis", tmp_path, "--mode", "loop", "--points", "0.3,0.4,0.3", "--ladder-step", "0.1",
                      "--refine", "", "--n", "1", "--progress-interval", "30") == 0
    df = _check(tmp_path, "hysteresis", 1)
    assert list(df.sort_values("epoch")["direction"]) == ["up", "up", "down"]


def test_hysteresis_sweep_chained(tmp_path):
    assert run_family("hysteresis", tmp_path, "--mode", "sweep", "--up-range", "0.3,0.4", "--down-range", "0.4,0.3",
                      "--ladder-step", "0.1", "--prep-epochs", "2", "--ordered-accept", "1",
                      "--collapse-accept", "0", "--n", "1", "--progress-interval", "30") == 0
    df = _check(tmp_path, "hysteresis", 4)             # 2 preparation + 2 sweeps from their checkpoints
    kids = df[df["role"] == "child"]
    assert set(kids["origin"]) == {"ordered", "collapse"}
    assert kids["init_checkpoint"].str.endswith(".pt").all() and kids["parent"].notna().all()


def test_spinodal(tmp_path):
    assert run_family("spinodal", tmp_path, "--directions", "up", "--holds", "1", "--init-epochs", "1",
                      "--up-ladder", "0.4,0.5", "--ladder-step", "0.05", "--n", "1", "--progress-interval", "30") == 0
    df = _check(tmp_path, "spinodal", 1)
    assert list(df.sort_values("epoch")["phase"]) == ["init", "ladder", "ladder", "ladder"]


def test_lifetime_acceptance(tmp_path, capsys):
    # seed 0 passes (accept <= 1.0), seed 1's child must not run when the rule rejects: accept <= 0 for none
    # (thresholds lie in [0, 1]; a 2-epoch run never has error 0)
    assert run_family("lifetime", tmp_path, "--targets", "0.46", "--init-epochs", "2", "--observe-epochs", "2",
                      "--observe-drop", "1",
                      "--init-accept", "1.0", "--n", "2", "--progress-interval", "30") == 0
    df = _check(tmp_path, "lifetime", 4)
    assert set(df["phase"]) == {"init", "observe"}
    assert run_family("lifetime", tmp_path, "--targets", "0.46", "--init-epochs", "2", "--observe-epochs", "2",
                      "--init-accept", "0",
                      "--n", "1", "--progress-interval", "30", name="lifetime_rejected") == 0
    _check(tmp_path, "lifetime_rejected", 1)            # the rejected init has no follow-up
    out = capsys.readouterr().out                        # ... and the summary says so
    assert "preparation runs branch=ordered eta=0.4: 1 run, 0 kept, 1 rejected (1 by the rule <=0" in out


def test_trap(tmp_path, capsys):
    assert run_family("trap", tmp_path, "--trap-epochs", "2", "--trap-accept", "0", "--intervention-lambdas", "0.0",
                      "--lr-multipliers", "0.1,1", "--intervention-epochs", "1", "--n", "1",
                      "--progress-interval", "30") == 0
    df = _check(tmp_path, "trap", 3)
    assert sorted(df.loc[df["phase"] == "intervention", "lr"].round(6).unique()) == [0.01, 0.1]
    out = capsys.readouterr().out        # the summary is the escape table: escapes per (λ, LR multiplier)
    assert "escaped" in out and "escape_fraction" in out


def test_intervention_on_uri_storage(tmp_path):
    # storage given as a URI (pyarrow filesystem): checkpoints exported to and fetched from it
    uri = f"file://{tmp_path}"
    assert run_family("intervention", uri, "--targets", "0.5", "--jump-epochs", "2", "--prep-epochs", "2",
                      "--ordered-accept", "1", "--collapse-accept", "0", "--n", "1", "--progress-interval", "30") == 0
    df = _check(tmp_path, "intervention", 4)
    kids = df[df["role"] == "child"]
    assert kids["init_checkpoint"].str.startswith("file://").all()
    assert (tmp_path / "intervention" / "chain" / "prep0000.pt").exists()


def test_universality(tmp_path):
    assert run_family("universality", tmp_path, "--variant", "asymmetric", "--up-range", "0.3,0.35",
                      "--down-range", "0.35,0.3", "--holds", "1", "--prep-epochs", "2", "--ordered-accept", "1",
                      "--collapse-accept", "0", "--n", "1", "--progress-interval", "30") == 0
    df = _check(tmp_path, "universality", 4)
    assert set(df["noise"]) == {"asymmetric"}
