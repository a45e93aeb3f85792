"""Issue 8, items 1 and 3: what is refused before Ray starts (one-line errors, exit 2), and a --resume
that would mix or overwrite results. No Ray here: every case fails before ray.init."""
import json
import math
import os

import pandas as pd
import pytest

from dgl_ray.errors import ConfigError
from tests._sweep_helpers import no_ray, one_line_error, run_family  # noqa: F401  (no_ray: a fixture)


_err = one_line_error


@pytest.fixture(autouse=True)
def _no_ray(no_ray):
    yield


@pytest.mark.parametrize("family, args, needle", [
    ("coexistence", ["--checkpoint-every", "0"], "--checkpoint-every=0 must be >= 1"),
    ("coexistence", ["--keep-checkpoints", "0"], "--keep-checkpoints=0 must be >= 1"),
    ("coexistence", ["--lr", "nan"], "--lr=nan must be a finite number"),
    ("trap", ["--trap-accept", "nan"], "--trap-accept=nan must be a finite number"),
    ("trap", ["--trap-accept", "-0.5"], "--trap-accept=-0.5 is an error threshold"),
    ("trap", ["--escape-below", "inf"], "--escape-below=inf must be a finite number"),
    ("lifetime", ["--init-accept", "1.5"], "--init-accept=1.5 is an error threshold"),
    ("trap", ["--widths", "0.5,1"], "--widths=0.5,1 is not used by trap"),
    ("trap", ["--order", "seed"], "--order=seed orders grid plans"),
    ("hysteresis", ["--mode", "sweep", "--order", "seed"], "--order=seed orders grid plans"),
])
def test_refused_before_ray(tmp_path, capsys, family, args, needle):
    assert run_family(family, tmp_path, *args) == 2
    assert needle in _err(capsys)
    assert not (tmp_path / family).exists()          # nothing written


def test_cifar_data_missing_is_one_line(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--dataset", "cifar10", "--data-root", str(tmp_path / "nodata"),
                      "--lambdas", "0.3", "--n", "1") == 2
    err = _err(capsys)
    assert "cifar10 not found" in err and str(tmp_path / "nodata") in err


def test_dry_run_names_missing_data_and_gpus_but_shows_the_plan(tmp_path, capsys):
    rc = run_family("coexistence", tmp_path, "--dataset", "cifar100", "--data-root", str(tmp_path / "nodata"),
                    "--lambdas", "0.3", "--n", "1", "--gpus-per-trial", "64", "--dry-run")
    out = capsys.readouterr().out
    assert rc == 0 and "trial size: 1" in out
    assert "warning: cifar100 not found" in out and "warning: --gpus-per-trial=64" in out


def test_gpus_asked_but_absent(tmp_path, capsys):
    import torch
    if torch.cuda.device_count() >= 64:
        pytest.skip("a machine with 64 GPUs")
    assert run_family("coexistence", tmp_path, "--gpus-per-trial", "64", "--lambdas", "0.3", "--n", "1") == 2
    assert "--gpus-per-trial=64" in _err(capsys)


def test_relative_data_root_is_made_absolute(tmp_path, monkeypatch):
    from dgl_ray.sweeps import coexistence
    from dgl_ray.tune.options import parse
    monkeypatch.chdir(tmp_path)
    o = parse(coexistence.FAMILY, ["--data-root", "data", "--lambdas", "0.3", "--n", "1"])
    assert o.data_root == str(tmp_path / "data")
    spec = coexistence.plan(o)
    assert {c["data_root"] for c in spec.searcher.plan_configs()} == {str(tmp_path / "data")}


@pytest.mark.parametrize("line, needle", [("epochs = 3.7", "epochs = 3.7 must be an integer"),
                                          ("epochs = \"ten\"", "epochs = 'ten' must be an integer"),
                                          ("lr = \"fast\"", "lr = 'fast' must be a number")])
def test_preset_values_are_typed(tmp_path, capsys, line, needle):
    preset = tmp_path / "p.toml"
    preset.write_text(f'family = "coexistence"\n{line}\n')
    assert run_family("coexistence", tmp_path, "--config", str(preset), "--dry-run") == 2
    assert needle in _err(capsys)


def test_preset_integral_float_is_accepted(tmp_path, capsys):
    preset = tmp_path / "p.toml"
    preset.write_text('family = "coexistence"\nepochs = 3.0\nlambdas = "0.3"\nn = 1\n')
    assert run_family("coexistence", tmp_path, "--config", str(preset), "--dry-run") == 0
    assert "epochs                1 value : 3" in capsys.readouterr().out


def test_dry_run_storage_estimate_and_warning(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--lambdas", "0.3,0.5", "--n", "3", "--epochs", "4",
                      "--group-size", "1", "--dry-run") == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if "storage (estimate" in ln][0]
    assert "24 rows" in line and "warning" not in out                  # 6 trials x 4 evaluations
    assert run_family("coexistence", tmp_path, "--lambdas", "0.3,0.5", "--n", "3", "--epochs", "4",
                      "--dry-run", "--storage-warn-gb", "0.00001") == 0
    assert "warning: the plan needs about" in capsys.readouterr().out


def test_storage_estimate_of_a_resnet_checkpoint():
    """The issue's figure: a ResNet-18 checkpoint (weights, momentum, cached g_v) is about 134 MB."""
    from dgl_ray.tune.estimate import estimate
    e = estimate([{"dataset": "cifar10", "lambda": 0.5, "seed": 0}], keep=1)
    assert 130e6 < e["checkpoint_bytes"] < 138e6 and e["rows"] == 100


# ---- --resume: a sweep of this tool, with the same plan ------------------------------------------------

def _sweep_folder(tmp_path, family="coexistence", *args):
    """Write the manifest a real start writes (cli.main does it right before Ray starts)."""
    import importlib
    from dgl_ray import manifest
    from dgl_ray.tune import cli, options, plan
    mod = importlib.import_module(f"dgl_ray.sweeps.{family}")
    argv = ["--storage", str(tmp_path), "--name", family, *args]
    o = options.parse(mod.FAMILY, argv)
    spec = mod.plan(o)
    spec, group_size = plan.pack_plan(spec, o)
    o = o.replace(group_size=group_size)
    manifest.write_manifest(o.storage, o.name, cli.sweep_manifest(o, spec))
    (tmp_path / family / "experiment_state-x.json").write_text("{}")


def test_resume_refuses_a_folder_that_is_not_a_sweep(tmp_path, capsys):
    exp = tmp_path / "coexistence"
    exp.mkdir()
    rows = pd.DataFrame({"run": [f"r{i}" for i in range(600)], "epoch": 30, "test_error": 0.1, "lambda": 0.4})
    rows.to_parquet(exp / "results.parquet")
    before = (exp / "results.parquet").read_bytes()
    assert run_family("coexistence", tmp_path, "--resume", "--lambdas", "0.3", "--n", "2") == 2
    assert "not a sweep of this tool" in _err(capsys)
    assert (exp / "results.parquet").read_bytes() == before      # the 600 rows are untouched


def test_resume_of_nothing_is_refused(tmp_path, capsys):
    assert run_family("coexistence", tmp_path, "--resume") == 2
    assert "nothing to resume" in _err(capsys)


@pytest.mark.parametrize("changed, needle", [
    (["--lambdas", "0.3,0.5,0.6"], "--lambdas '0.3,0.5,0.6' (stored: '0.3,0.5')"),
    (["--lambdas", "0.3,0.5", "--epochs", "7"], "--epochs 7 (stored: 3)"),
    (["--lambdas", "0.3,0.5", "--group-size", "1"], "--group-size 1 (stored: 2)"),   # 8 digits trials: 4 Tune trials of 2
])
def test_resume_with_another_plan_is_refused(tmp_path, capsys, changed, needle):
    _sweep_folder(tmp_path, "coexistence", "--lambdas", "0.3,0.5", "--n", "4", "--epochs", "3")
    args = ["--n", "4", "--epochs", "3", *changed] if "--epochs" not in changed else ["--n", "4", *changed]
    assert run_family("coexistence", tmp_path, "--resume", *args) == 2
    err = _err(capsys)
    assert "the plan differs from the stored one" in err and needle in err


def test_resume_with_the_same_plan_passes_the_checks(tmp_path, capsys):
    _sweep_folder(tmp_path, "coexistence", "--lambdas", "0.3,0.5", "--n", "4", "--epochs", "3")
    # runner-only options may change between a start and its resume
    assert run_family("coexistence", tmp_path, "--resume", "--lambdas", "0.3,0.5", "--n", "4", "--epochs", "3",
                      "--max-concurrent", "1", "--dry-run") == 0


def test_resume_of_a_grouped_sweep_of_the_older_plan_form_says_so(tmp_path, capsys):
    """Grouped Tune configs now hold their shared fields once (plan form 2): a folder started by an
    older version (no plan_form in its manifest) is refused with that reason, not "the plan differs"."""
    args = ["--lambdas", "0.3,0.5", "--n", "4", "--epochs", "3"]
    _sweep_folder(tmp_path, "coexistence", *args)
    mpath = tmp_path / "coexistence" / "dgl_sweep.json"
    m = json.loads(mpath.read_text())
    assert m["plan_form"] == 2 and m["members"] > m["trials"]         # grouped: 8 trials in 4 Tune trials
    del m["plan_form"]
    mpath.write_text(json.dumps(m))
    assert run_family("coexistence", tmp_path, "--resume", *args) == 2
    err = _err(capsys)
    assert "started by another dgl_ray version" in err and "plan form 1" in err


def test_manifest_keeps_fingerprint_and_command(tmp_path):
    _sweep_folder(tmp_path, "coexistence", "--lambdas", "0.3,0.5", "--n", "4", "--epochs", "3")
    m = json.loads((tmp_path / "coexistence" / "dgl_sweep.json").read_text())
    assert m["tool"] == "dgl_ray" and len(m["fingerprint"]) == 16 and m["members"] == 8
    assert m["command"].endswith("--lambdas 0.3,0.5 --n 4 --epochs 3 --resume")
    assert m["command"].startswith(f"cd {os.getcwd()} && ")


# ---- train and report check their output paths before work ---------------------------------------

def test_train_save_to_a_folder_is_refused_before_training(tmp_path, capsys):
    from dgl_ray.train import main
    assert main(["--lambda", "0.3", "--epochs", "1", "--save", str(tmp_path)]) == 2
    assert "is a folder" in _err(capsys)
    f = tmp_path / "f"
    f.write_text("x")
    assert main(["--lambda", "0.3", "--epochs", "1", "--save", str(f / "x.pt")]) == 2
    assert "cannot write" in _err(capsys)


def test_report_out_below_a_file_is_refused_before_work(tmp_path, capsys):
    from dgl_ray.analysis.__main__ import main
    f = tmp_path / "f"
    f.write_text("x")
    src = tmp_path / "sweep"
    src.mkdir()
    pd.DataFrame({"run": ["a"], "epoch": [1], "test_error": [0.1], "lambda": [0.3], "status": ["completed"]}
                 ).to_parquet(src / "results.parquet")
    assert main(["report", str(src), "--out", str(f / "x"), "--no-figures", "--quiet"]) == 2
    assert "--out" in _err(capsys)


def test_thresholds_are_checked_by_the_chained_searcher():
    from dgl_ray.errors import ConfigError
    from dgl_ray.tune.searchers import ChainedSearcher
    for bad in (math.nan, -0.1, 1.5):
        with pytest.raises(ConfigError, match="error threshold"):
            ChainedSearcher([({"lambda": 0.3}, ("<", bad), [])], chain_dir="/tmp/x")


# ---- one schema for Tune configs -------------------------------------------------------------------

def test_misspelled_field_in_a_tune_config_is_an_error():
    from dgl_ray.errors import ConfigError
    from dgl_ray.tune.preflight import validate_configs
    with pytest.raises(ConfigError, match="'lr_gama' \\(did you mean 'lr_gamma'\\?\\)"):
        validate_configs([{"lambda": 0.3, "seed": 0, "family": "x"}, {"lambda": 0.3, "seed": 1, "lr_gama": 0.5}])
    with pytest.raises(ConfigError, match="'sead'"):           # inside a grouped Tune trial too
        from dgl_ray.config import TrialConfig
        TrialConfig.check_tune_config({"group": [{"lambda": 0.3, "seed": 0}, {"lambda": 0.3, "sead": 1}]})


def test_validate_many_checks_every_seed_and_lambda():
    from dgl_ray.config import TrialConfig
    from dgl_ray.errors import ConfigError
    ok = [{"lambda": 0.1 * i, "seed": i} for i in range(5)]
    TrialConfig.validate_many(ok)
    with pytest.raises(ConfigError, match="seed=-1"):
        TrialConfig.validate_many(ok + [{"lambda": 0.3, "seed": -1}])
    with pytest.raises(ConfigError, match="1.5"):
        TrialConfig.validate_many(ok + [{"lambda": 1.5, "seed": 9}])


# ---- partial results: a running or crashed sweep reads with its missing trials counted ---------------

def _trial_folder(exp, tid, run_rows):
    d = exp / f"any_trainable_{tid}_1_K=16_2026-01-01_00-00-00"
    d.mkdir(parents=True)
    (d / "params.json").write_text(json.dumps({"lambda": run_rows[0]["lambda"], "seed": run_rows[0]["seed"]}))
    (d / "result.json").write_text("".join(json.dumps({**r, "trial_id": tid}) + "\n" for r in run_rows))


def test_load_experiment_of_a_crashed_sweep_counts_missing(tmp_path, capsys):
    from dgl_ray.analysis import branch_table, load_experiment
    from dgl_ray.analysis.frames import missing_trials
    exp = tmp_path / "crashed"
    row = dict(family="coexistence", dataset="digits", eta=0.4, width=1.0)
    _trial_folder(exp, "aaaa0001", [dict(row, seed=0, epoch=e, test_error=0.1, status="running" if e < 3 else "completed",
                                         **{"lambda": 0.3}) for e in (1, 2, 3)])
    _trial_folder(exp, "aaaa0002", [dict(row, seed=1, epoch=e, test_error=0.05, status="running", **{"lambda": 0.3})
                                    for e in (1, 2)])                  # stopped at epoch 2 of 3
    (exp / "dgl_sweep.json").write_text(json.dumps({"tool": "dgl_ray", "plan_kind": "grid", "members": 3}))
    df = load_experiment(exp)
    assert dict(df.groupby("run")["run_status"].first()) == {"aaaa0001": "completed", "aaaa0002": "unfinished"}
    assert missing_trials(df) == {"finished": 1, "decided": 0, "unfinished": 1, "errored": 0, "never_started": 1, "missing": 2}
    bt = branch_table(df)
    assert bt[["n", "L", "n_missing"]].values.tolist() == [[2, 1, 1]]     # the epoch-2 run is not counted as L
    from dgl_ray.analysis.__main__ import main
    assert main(["report", str(exp), "--out", str(tmp_path / "rep"), "--no-figures", "--quiet"]) == 0
    assert "2 trial(s) missing from the tables: 1 unfinished, 0 errored, 1 never started (1 finished)" \
        in capsys.readouterr().out


def test_lambda_has_one_spelling():
    # configs, plans, checkpoints and rows say `lambda`; `lam` is only the Python attribute
    from dgl_ray.config import TrialConfig
    d = TrialConfig(dataset="digits", lam=0.3, seed=0, epochs=1).to_dict()
    assert d["lambda"] == 0.3 and "lam" not in d
    assert TrialConfig.from_dict(d) == TrialConfig(dataset="digits", lam=0.3, seed=0, epochs=1).resolved()
    with pytest.raises(ConfigError, match="λ is spelled 'lambda'"):
        TrialConfig.from_dict({"dataset": "digits", "lam": 0.3})
    with pytest.raises(ConfigError, match="did you mean 'lambda'"):
        TrialConfig.check_tune_config({"lamda": 0.3, "seed": 0})


def test_a_sweep_without_address_starts_its_own_ray_and_reads_RAY_ADDRESS(monkeypatch):
    """Without --address, ray.init() would join the last `ray start` cluster of the machine (another
    user's or session's, with its own CPUs): the sweep starts its own instance ("local"). $RAY_ADDRESS,
    Ray's own way to name a cluster, becomes the --address default (then checked like one)."""
    import ray
    from dgl_ray.sweeps import coexistence
    from dgl_ray.tune import options, runner
    seen = {}

    class Ctx:
        dashboard_url = None
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw) or Ctx())
    runner.init_ray(None, num_cpus=2)
    assert seen["address"] == "local" and seen["num_cpus"] == 2
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert options.parse(coexistence.FAMILY, []).address is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert options.parse(coexistence.FAMILY, []).address == "10.0.0.1:6379"
    assert options.parse(coexistence.FAMILY, ["--address", "auto"]).address == "auto"


def test_an_adaptive_extension_that_stopped_at_its_target_misses_nothing(tmp_path):
    """A grid of 2 trials grown by an adaptive search of budget 50 that stopped at its target after 1 trial:
    nothing is missing (the manifest's members, 52, counts the adaptive budget); a grid trial that never
    started still is."""
    from dgl_ray.analysis import load_experiment
    from dgl_ray.analysis.frames import missing_trials
    exp = tmp_path / "grown"
    row = dict(family="coexistence", dataset="digits", eta=0.4, width=1.0, epoch=3, test_error=0.1, status="completed")
    _trial_folder(exp, "aaaa0001", [dict(row, seed=0, plan_id="g00000", **{"lambda": 0.3})])
    _trial_folder(exp, "aaaa0002", [dict(row, seed=1, plan_id="g00001", **{"lambda": 0.3})])
    _trial_folder(exp, "aaaa0003", [dict(row, seed=2, plan_id="b00000", **{"lambda": 0.45})])
    ext = {"plan_kind": "BoundarySearcher", "added": 50, "folder": "extend-1"}
    (exp / "dgl_sweep.json").write_text(json.dumps({"tool": "dgl_ray", "plan_kind": "grid", "members": 52,
                                                    "extensions": [ext]}))
    assert missing_trials(load_experiment(exp))["missing"] == 0
    (exp / "dgl_sweep.json").write_text(json.dumps({"tool": "dgl_ray", "plan_kind": "grid", "members": 53,
                                                    "extensions": [ext]}))
    assert missing_trials(load_experiment(exp))["never_started"] == 1


def test_a_running_extension_reads_with_its_rows(tmp_path):
    """While an extension runs (or after its driver was killed), results.parquet holds the earlier part only:
    load_experiment adds the runs of the extension's trial folders (<name>/extend-1/), none twice."""
    from dgl_ray.analysis import load_experiment
    from dgl_ray.analysis.frames import missing_trials
    from dgl_ray.tidy import for_parquet
    exp = tmp_path / "grown"
    row = dict(family="coexistence", dataset="digits", eta=0.4, width=1.0, test_error=0.1, **{"lambda": 0.3})
    _trial_folder(exp, "aaaa0001", [dict(row, seed=0, epoch=e, status="running" if e < 2 else "completed")
                                    for e in (1, 2)])
    (exp / "dgl_sweep.json").write_text(json.dumps({"tool": "dgl_ray", "plan_kind": "grid", "members": 1}))
    for_parquet(load_experiment(exp)).to_parquet(exp / "results.parquet", index=False)
    _trial_folder(exp / "extend-1", "bbbb0001", [dict(row, seed=1, epoch=e, status="running") for e in (1,)])
    (exp / "dgl_sweep.json").write_text(json.dumps({"tool": "dgl_ray", "plan_kind": "grid", "members": 2, "extensions": [
        {"folder": "extend-1", "plan_kind": "grid", "added": 1}]}))
    df = load_experiment(exp)
    assert sorted(df.groupby("run")["epoch"].max().items()) == [("aaaa0001", 2), ("bbbb0001", 1)]
    assert set(df["experiment"]) == {"grown"}
    assert missing_trials(df) == {"finished": 1, "decided": 0, "unfinished": 1, "errored": 0, "never_started": 0,
                                  "missing": 1}
