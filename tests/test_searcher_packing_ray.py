"""Packed chained and adaptive sweeps end to end through Ray Tune (digits, 1 epoch, a few trials)."""
import pytest

from tests._sweep_helpers import parquet, run_family


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    import ray
    from dgl_ray.tune.runner import init_ray
    init_ray(None, num_cpus=2)
    yield
    ray.shutdown()


def _one_row_per_run(df, n_runs):
    assert df["run"].nunique() == n_runs and len(df) == n_runs          # 1 epoch: one row per run
    assert (df["run_status"] == "completed").all()
    assert df["plan_id"].nunique() == n_runs                            # every member its own plan trial
    g = df[df["group"].notna()]                                         # a population of one is a plain trial
    assert (g["run"] == g["group"] + "_" + g["member"].astype(int).map("{:03d}".format)).all()
    return df["group"].fillna(df["run"])                                 # the Tune trial of each row


def test_trap_chain_packed(tmp_path, capsys):
    assert run_family("trap", tmp_path, "--trap-epochs", "1", "--trap-accept", "0", "--intervention-lambdas",
                      "0.0,0.2", "--lr-multipliers", "0.1,1", "--intervention-epochs", "1", "--n", "3",
                      "--group-size", "3", "--progress-interval", "30") == 0
    df = parquet(tmp_path, "trap")
    _one_row_per_run(df, 3 + 3 * 4)
    preps, kids = df[df["role"] == "prep"], df[df["role"] == "child"]
    assert preps["group"].nunique() == 1 and (preps["group_size"] == 3).all()   # the 3 preparation trials packed
    assert kids["group"].nunique() == 4 and (kids["group_size"] == 3).all()     # 12 children in 4 populations
    # each child started from its own parent's exported checkpoint, whatever population it ran in
    parent_of = dict(zip(preps["plan_id"], preps["seed"]))
    assert (kids["parent"].map(parent_of) == kids["seed"]).all()
    assert (kids["init_checkpoint"] == kids["parent"].map(lambda p: str(tmp_path / "trap" / "chain" / f"prep{p[1:]}.pt"))).all()
    out = capsys.readouterr().out
    assert "15 trials finished, 0 unfinished, 0 errored" in out and "3 preparation trials packed into 1 Tune trials" in out


def test_adaptive_packed(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.2,0.7", "--adaptive", "8", "--adaptive-n0", "1",
                      "--adaptive-step", "0.05", "--group-size", "3", "--epochs", "1", "--progress-interval", "30") == 0
    df = parquet(tmp_path, "coexistence")
    tune_trials = _one_row_per_run(df, 8)
    assert df["group_size"].max() == 3 and tune_trials.nunique() == 4   # design 1 + 1, then 3 + 3
    assert len(set(zip(df["lambda"].round(6), df["seed"]))) == 8         # no (λ, seed) twice
    out = capsys.readouterr().out
    assert "8 trials finished, 0 unfinished, 0 errored" in out and "adaptive: λ_c" in out
